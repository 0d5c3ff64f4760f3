require ["index", "date", "fileinto"];
if header :index 1 :contains "received" "relay.example.com" { fileinto "Junk"; }
if header :index 1 :last :contains "received" "a.example.net" { fileinto "Work"; }
# (Pigeonhole 0.5.19 forgets :index when :zone follows it: none here.)
if date :index 2 "received" "minute" "59" { fileinto "Archive"; }
