//! posthorn-sieve - the Sieve mail filtering language (RFC 5228 and the
//! extensions in `script::EXTENSIONS`), written for Posthorn: a compiler
//! whose errors name their line (for deliver's log and a ManageSieve
//! CHECKSCRIPT), a compiled form cached beside each script, and an
//! interpreter that turns a message and its envelope into a list of
//! actions. `run` carries those actions out for one recipient, so deliver
//! (and an LMTP server) share one Sieve delivery.
//!
//! Our own implementation: the one Rust crate for Sieve is AGPL.
//!
//! Distrusts scripts: a script is at most MAX_SCRIPT_SIZE bytes, nests at
//! most parser::MAX_NESTING deep, asks for at most MAX_ACTIONS actions and
//! MAX_REDIRECTS redirects, and runs for at most a CPU-time budget; a
//! regular expression is compiled with size limits and matched in linear
//! time. A script never names a file outside the user's mail: folder and
//! script names are checked before they become paths.

#![forbid(unsafe_code)]

pub mod body;
pub mod cache;
pub mod codec;
pub mod compile;
pub mod datetime;
pub mod exec;
pub mod fuzz;
pub mod interp;
pub mod lexer;
pub mod matching;
pub mod memory;
pub mod message;
pub mod notify;
pub mod parser;
pub mod script;
pub mod strings;
pub mod vacation;

pub use compile::compile;
pub use script::Script;

/// Largest script accepted (Pigeonhole's sieve_max_script_size).
pub const MAX_SCRIPT_SIZE: usize = 1024 * 1024;
/// Most actions one run may ask for (Pigeonhole's sieve_max_actions).
pub const MAX_ACTIONS: usize = 32;
/// Most redirects one run may ask for (Pigeonhole's sieve_max_redirects).
pub const MAX_REDIRECTS: usize = 4;
/// Longest value a variable holds (Pigeonhole's limit); longer is cut.
pub const MAX_VARIABLE_SIZE: usize = 4096;
/// Longest variable name.
pub const MAX_VARIABLE_NAME: usize = 64;
/// Most variables one script may set.
pub const MAX_VARIABLES: usize = 255;
/// How deep includes nest, and how many a run may do (RFC 6609; Pigeonhole's defaults).
pub const MAX_INCLUDE_DEPTH: usize = 10;
pub const MAX_INCLUDES: usize = 255;

/// A compile or run-time error, with the script line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: u32,
    pub message: String,
}

impl Error {
    /// at - an error on `line`.
    pub fn at(line: u32, message: impl Into<String>) -> Error {
        Error {
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Error {}

/// check_script_name - a script name as ManageSieve (RFC 5804 §1.6) and
/// include (RFC 6609) use it: not empty, at most 255 characters, no `/`,
/// no control characters, not starting with a dot; so it can become a
/// file name in the script directory and nothing else.
pub fn check_script_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(format!("bad script name length: '{name}'"));
    }
    if name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(format!("invalid script name '{name}'"));
    }
    Ok(())
}
