require ["date", "relational", "fileinto"];
if date :originalzone :is "date" "year" "2005" { fileinto "Archive"; }
if date :zone "+0000" :is "date" "weekday" "3" { fileinto "Work"; }
if date :originalzone :value "lt" "date" "hour" "09" { fileinto "Other"; }
if date :zone "-0800" :is "date" "date" "2026-11-03" { fileinto "Lists"; }
if currentdate :value "ge" "year" "2000" { fileinto "Junk"; }
