if address :is "from" "ann@example.org" { redirect "ann.copy@example.com"; redirect "ann.copy@example.com"; }
if header :contains "subject" "release" { redirect "dev@example.com"; }
