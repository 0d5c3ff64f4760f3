require ["fileinto"];
if exists ["List-Id", "Precedence"] { fileinto "Lists"; }
elsif size :over 400 { fileinto "Archive"; }
elsif size :under 300 { fileinto "Other"; }
if not exists "Message-ID" { fileinto "Junk"; }
