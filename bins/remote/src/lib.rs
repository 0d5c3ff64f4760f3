//! posthorn-remote - the parts of `remote` that rewrite octets with no I/O
//! of their own, as a library so the fuzz targets and qrun's DKIM signer
//! can use them: the DATA encoder (the queued message made safe for the
//! wire). The DNS client is posthorn-dns. The program is main.rs.

#![forbid(unsafe_code)]

pub mod data;
