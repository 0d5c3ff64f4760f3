//! posthorn-auth - what smtpd, pop3d and imapd share at the front door:
//! login names, password checks, SASL PLAIN and LOGIN, the failure
//! throttle and its log line, the password check as a process of its own
//! (request, checker), and pop3d's and imapd's split into a first
//! process, a pre-login process and a session (split). (The connection
//! itself, TLS and the client's address are posthorn-net's.) A mistake
//! here is a break-in: each piece is small, sans-I/O where it parses,
//! and tested with known answers and property tests.

#![forbid(unsafe_code)]

pub mod checker;
pub mod login;
pub mod password;
pub mod request;
pub mod sasl;
pub mod split;
