require ["variables", "fileinto", "enotify"];
set :upper "u" "lists";
set :quotewildcard "q" "*won*";
set :encodeurl "e" "a b&c";
if string :is "${e}" "a%20b%26c" { if string :is "${q}" "\\*won\\*" { fileinto "${u}"; } }
