require ["envelope", "fileinto"];
if envelope :domain :is "from" "example.org" { fileinto "Work"; }
if envelope :localpart :is "to" "bob" { fileinto "Archive"; }
if envelope :all :is "from" "nobody@example.org" { discard; }
