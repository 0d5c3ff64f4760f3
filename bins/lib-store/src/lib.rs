//! posthorn-store - writing messages into mail stores, durably.
//!
//! Our own Maildir writer rather than the `maildir` crate: that crate does
//! not fsync the directory after the rename into new/, so an acknowledged
//! message can vanish on power loss.

#![forbid(unsafe_code)]

pub mod dotlock;
pub mod folder;
pub mod keywords;
pub mod maildir;
pub mod mbox;
pub mod utf7;

use std::io;

/// Why a store write failed. Every store failure is temporary: the message
/// stays queued and nothing is half-written.
#[derive(Debug)]
pub enum StoreError {
    /// A lock held by someone else for too long.
    LockBusy(String),
    /// Any I/O problem, disk full included.
    Io(String, io::Error),
    /// A mailbox file that is not safe to write (someone else's, a hard
    /// link, a device): left alone, and the delivery deferred until the
    /// postmaster looks.
    Unsafe(String),
}

impl StoreError {
    /// is_temporary - the question the mail system always asks.
    pub fn is_temporary(&self) -> bool {
        true
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::LockBusy(m) | StoreError::Unsafe(m) => write!(f, "{m}"),
            StoreError::Io(ctx, e) => write!(f, "{ctx}: {e}"),
        }
    }
}

/// io_err - attach context to an I/O error.
pub(crate) fn io_err(ctx: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let c = ctx.into();
    move |e| StoreError::Io(c, e)
}
