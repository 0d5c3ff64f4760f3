//! posthorn-remote - the parts of `remote` that read or rewrite octets with
//! no I/O of their own, as a library so the fuzz targets can drive them:
//! the DNS answer parser (a stranger's packet) and the DATA encoder (the
//! queued message made safe for the wire). The program is main.rs.

#![forbid(unsafe_code)]

pub mod data;
pub mod dns;
