# RFC 5228 §9's example, with the folders of this corpus.
require ["fileinto"];
if header :is "Sender" "rust-dev-bounces@lists.example.net" {
    fileinto "Lists";
} elsif address :DOMAIN :is ["From", "To"] "example.org" {
    keep;
} elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "bob@example.org",
               header :matches "subject" ["*make*money*fast*", "*won*buy*"]) {
    fileinto "Junk";
} else {
    fileinto "Other";
}
