require ["enotify", "fileinto"];
if valid_notify_method "mailto:bob-pager@example.com" {
    if header :contains "subject" ["hello", "report"] {
        notify :importance "1" :message "New important mail" "mailto:bob-pager@example.com";
    }
}
if notify_method_capability "mailto:x@example.com" "online" "maybe" { fileinto "Other"; }
