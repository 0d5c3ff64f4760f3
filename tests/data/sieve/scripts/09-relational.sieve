require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "ge" :comparator "i;ascii-numeric" "received" "2" { fileinto "Archive"; }
if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "Lists"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "Work"; }
if header :value "gt" :comparator "i;ascii-casemap" "subject" "t" { fileinto "Other"; }
