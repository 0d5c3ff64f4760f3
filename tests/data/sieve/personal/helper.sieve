require ["fileinto"];
if header :contains "from" "ann" { fileinto "Work"; }
