//! posthorn-auth - what smtpd, pop3d and imapd share at the front door:
//! login names, password checks, SASL PLAIN and LOGIN, the failure
//! throttle and its log line, and the request the password check reads
//! (request). (The connection itself, TLS and the
//! client's address are posthorn-net's.) A mistake here is a break-in:
//! each piece is small, sans-I/O where it parses, and tested with known
//! answers and property tests.

#![forbid(unsafe_code)]

pub mod login;
pub mod password;
pub mod request;
pub mod sasl;
