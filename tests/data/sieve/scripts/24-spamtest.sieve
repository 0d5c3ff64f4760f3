require ["spamtest", "spamtestplus", "virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "8" { fileinto "Junk"; }
if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80" { fileinto "Archive"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "Other"; }
