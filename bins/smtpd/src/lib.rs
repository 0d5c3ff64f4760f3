//! posthorn-smtpd - the parts of smtpd that read untrusted octets with no
//! I/O of their own, as a library so the fuzz targets can drive them: the
//! command parser and the message-data checker. The server is main.rs.

#![forbid(unsafe_code)]

pub mod body;
pub mod command;
