# spam-to-junk.sieve - file mail that a filter marked as spam into Junk.
#
# deliver runs this rule itself, compiled in, after every other script
# (the user's included), so a message a user's rule files elsewhere
# stays there; `sieve.spam_to_junk = false` in posthorn.toml turns that
# off. To file spam before any user rule instead, name this file in
#
#     [sieve]
#     before = ["/etc/posthorn/sieve/spam-to-junk.sieve"]
#
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
