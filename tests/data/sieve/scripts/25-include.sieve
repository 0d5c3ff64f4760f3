require ["include", "fileinto"];
include :personal "helper";
if header :contains "subject" "release" { include :personal :once "helper"; }
fileinto "Archive";
