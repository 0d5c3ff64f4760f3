require ["copy", "fileinto"];
fileinto :copy "Archive";
if header :contains "subject" "report" { redirect :copy "boss@example.com"; }
if header :contains "subject" "hello" { fileinto "Work"; }
