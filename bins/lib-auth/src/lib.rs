//! posthorn-auth - what smtpd, pop3d and imapd share at the front door:
//! login names, password checks, SASL PLAIN and LOGIN, the failure
//! throttle and its log line, TLS configuration, and the client's address
//! (with the PROXY protocol). A mistake here is a break-in: each piece is
//! small, sans-I/O where it parses, and tested with known answers and
//! property tests.

#![forbid(unsafe_code)]

pub mod login;
pub mod password;
pub mod peer;
pub mod proxy;
pub mod sasl;
pub mod tls;
pub mod wire;
