require ["variables", "fileinto"];
if header :matches "subject" "* *" { set :lower :upperfirst "first" "${1}"; }
if header :matches "from" "*@*" { set "domain" "${2}"; }
set "len" "${first}";
set :length "n" "${first}";
if string :is "${domain}" ["example.org", "example.org>"] { fileinto "Work"; }
if string :matches "${first}" "H*" { fileinto "Other"; }
if string :value "gt" :comparator "i;ascii-numeric" "${n}" "4" { fileinto "Archive"; }
