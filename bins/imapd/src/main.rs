//! imapd - one IMAP4rev1 session on stdin/stdout (inetd, systemd
//! Accept=yes, tcpserver) over the user's Maildir++ folders. See imapd(8).

#![forbid(unsafe_code)]

mod command;
mod fetch;
mod flags;
mod folder;
mod folders;
mod mime;
mod uidlist;
mod utf7;

fn main() {}
