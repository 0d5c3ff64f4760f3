//! posthorn-spool - everything about the spool directory: its layout,
//! queue IDs, the record format `enqueue` reads, the queue file format,
//! the durable commit, and the wake-up FIFO.
//!
//! Trusted by the setgid `enqueue`, so it depends on almost nothing and
//! parses no mail headers.

#![forbid(unsafe_code)]

pub mod envelope;
pub mod layout;
pub mod qfile;
pub mod queue_id;
pub mod state;

pub use envelope::{Envelope, Recipient};
pub use layout::Spool;
pub use queue_id::QueueId;

/// queue_id_time - a time to generate a replacement ID with (now).
fn queue_id_time(_old: &QueueId) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
