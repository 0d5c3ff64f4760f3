//! utf7 - modified UTF-7 mailbox names: the code lives in posthorn-store,
//! which deliver's Sieve fileinto shares.

pub use posthorn_store::utf7::*;
