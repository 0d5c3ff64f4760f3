//! posthorn-net - the connection code smtpd, pop3d and imapd share, none
//! of it authentication: the wire on fds 0 and 1 (timeouts, lines under a
//! cap, literals, DEFLATE), TLS configuration, the PROXY header, and the
//! client's address; and after a login, the connection's way to the
//! session (handoff) and the TLS relay that keeps it unbroken (relay).
//! It distrusts every octet the client sends: each
//! piece is small, sans-I/O where it parses, and tested with known
//! answers and property tests.

#![forbid(unsafe_code)]

pub mod handoff;
pub mod peer;
pub mod proxy;
pub mod relay;
pub mod tls;
pub mod wire;
