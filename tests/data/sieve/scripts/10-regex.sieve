require ["regex", "fileinto", "variables"];
if header :regex "subject" "^\\[([a-z]+)\\] (re|fwd): " { fileinto "Lists.${1}"; }
if address :regex :localpart "from" "^[[:alpha:]]+\\+lists$" { fileinto "Other"; }
if header :regex :comparator "i;octet" "subject" "WON|won" { fileinto "Junk"; }
