require ["encoded-character", "fileinto"];
if header :contains "subject" "${unicode:00E9}" { fileinto "Other"; }
if address :is "from" "ann${hex:40}example.org" { fileinto "Work"; }
