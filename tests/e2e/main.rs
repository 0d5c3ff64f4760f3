//! End-to-end tests: the real binaries against throwaway instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod aliases;
mod bench;
mod delivery;
mod durability;
mod imapd;
mod mailauth;
mod pop3d;
mod privsep;
mod remote;
mod root;
mod sendmail;
mod share;
mod sieve;
mod sieve_oracle;
mod smtpd;
mod stalls;
