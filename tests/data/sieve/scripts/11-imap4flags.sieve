require ["imap4flags", "fileinto"];
setflag "\\Seen";
addflag ["$Label1", "\\Flagged"];
if header :contains "subject" "won" { removeflag "\\Seen"; addflag "$Junk"; fileinto "Junk"; }
if hasflag :is "$label1" { fileinto :flags ["\\Answered", "Important"] "Work"; }
if address :is "from" "ann@example.org" { keep :flags "\\Draft"; }
