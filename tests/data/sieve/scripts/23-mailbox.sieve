require ["mailbox", "fileinto"];
if mailboxexists "Junk" { if header :contains "subject" "won" { fileinto "Junk"; } }
if mailboxexists "Nonexistent" { discard; }
if header :contains "subject" "release" { fileinto :create "Lists.release"; }
