require ["duplicate", "fileinto"];
if duplicate { fileinto "Junk"; }
if duplicate :header "subject" :handle "s" { discard; }
