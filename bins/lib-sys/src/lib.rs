//! posthorn-sys - plain Unix hygiene shared by every Posthorn program.
//!
//! Nothing here knows about mail. It is the one crate that may hold
//! `unsafe` (each use carries a `SAFETY:` note), so the programs can
//! `#![forbid(unsafe_code)]`.

pub mod child;
pub mod confine;
pub mod crypt;
pub mod exit;
pub mod fsio;
pub mod log;
pub mod privs;

pub use exit::Exit;
