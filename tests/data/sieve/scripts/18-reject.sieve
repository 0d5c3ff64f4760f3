require ["reject"];
if header :contains "subject" ["won", "report"] { reject "No thanks."; }
