require ["fileinto"];
if address :localpart :is "from" "ann" { fileinto "Work"; }
if address :domain :contains "from" "lists" { fileinto "Lists"; }
if address :all :comparator "i;octet" :is "to" "bob@example.org" { fileinto "Archive"; }
if address :matches "cc" "*carl*" { fileinto "Other"; }
