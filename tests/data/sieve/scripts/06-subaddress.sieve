require ["subaddress", "fileinto"];
if address :detail "to" "work" { fileinto "Work"; }
if address :user :is "from" "carl" { fileinto "Other"; }
if address :detail :is "from" "" { fileinto "Junk"; }
