require ["fileinto"];
if header :contains "from" "ann" { fileinto "Work"; stop; }
fileinto "Other";
