require ["vacation", "fileinto"];
vacation :addresses ["bob+work@example.org"] :subject "Out of office" :from "bob@example.org" :handle "ooo" "Back soon.";
if header :contains "subject" "won" { fileinto "Junk"; }
