require ["body", "fileinto"];
if body :text :contains "café" { fileinto "Other"; }
if body :content "text/html" :contains "<b>" { fileinto "Archive"; }
if body :raw :contains "caf=C3=A9" { fileinto "Work"; }
if body :contains ["money", "report"] { fileinto "Junk"; }
