//! End-to-end tests: the real binaries against throwaway instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod aliases;
mod delivery;
mod durability;
mod imapd;
mod pop3d;
mod privsep;
mod remote;
mod root;
mod sendmail;
mod smtpd;
