require ["editheader", "fileinto"];
addheader "X-Filtered" "yes";
if exists "x-filtered" { deleteheader "subject"; }
if not exists "subject" { fileinto "Work"; }
deleteheader :contains "received" "relay";
if header :contains "received" "relay" { fileinto "Junk"; }
