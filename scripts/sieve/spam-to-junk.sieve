# spam-to-junk.sieve - file mail that a filter marked as spam into Junk.
#
# A global script for deliver: name it in posthorn.toml as
#
#     [sieve]
#     after = ["/etc/posthorn/sieve/spam-to-junk.sieve"]
#
# to let each user's own rules go first (a message they file elsewhere
# stays there), or in `before` to file spam before any user rule runs.
# The marker is the `spam_header` key of posthorn.toml ("X-Spam: Yes" by
# default, rspamd's; SpamAssassin's is "X-Spam-Flag: YES"), which deliver
# passes in as environment items; the value is compared ignoring case.
# Junk is made when missing, with the \Junk special use IMAP clients
# look for.
require ["fileinto", "mailbox", "environment", "variables"];

if environment :matches "vnd.posthorn.spam-header-name" "*" {
    set "name" "${1}";
}
if environment :matches "vnd.posthorn.spam-header-value" "*" {
    set "value" "${1}";
}
if allof (not string :is "${name}" "", header :is "${name}" "${value}") {
    fileinto :create "Junk";
}
