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
