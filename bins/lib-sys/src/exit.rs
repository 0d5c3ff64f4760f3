//! exit - sysexits(3) codes, and the one table that says which are temporary.

use std::fmt;

/// A sysexits(3) code carried to the edge of a program with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

pub const OK: u8 = 0;
pub const USAGE: u8 = 64;
pub const DATAERR: u8 = 65;
pub const NOINPUT: u8 = 66;
pub const NOUSER: u8 = 67;
pub const NOHOST: u8 = 68;
pub const UNAVAILABLE: u8 = 69;
pub const SOFTWARE: u8 = 70;
pub const OSERR: u8 = 71;
pub const OSFILE: u8 = 72;
pub const CANTCREAT: u8 = 73;
pub const IOERR: u8 = 74;
pub const TEMPFAIL: u8 = 75;
pub const PROTOCOL: u8 = 76;
pub const NOPERM: u8 = 77;
pub const CONFIG: u8 = 78;

/// dsn_for - the DSN status and temporariness of a delivery agent's exit code.
///
/// Like Postfix's sys_exits table: anything unknown (including a crash)
/// is temporary, so a bug never turns into a bounce.
pub fn dsn_for(code: i32) -> (&'static str, bool) {
    match code {
        0 => ("2.0.0", false),
        64 => ("5.3.0", false),
        65 => ("5.6.0", false),
        66 => ("5.3.0", false),
        67 => ("5.1.1", false),
        68 => ("5.1.2", false),
        69 => ("5.3.0", false),
        70 => ("5.3.0", false),
        71 => ("4.3.0", true),
        72 => ("5.3.0", false),
        73 => ("5.2.0", false),
        74 => ("4.3.0", true),
        75 => ("4.3.0", true),
        76 => ("5.5.0", false),
        77 => ("5.7.0", false),
        78 => ("5.3.5", false),
        _ => ("4.3.0", true),
    }
}

/// dsn_from_text - the enhanced status code a helper put at the front of
/// its reason ("5.2.2 mailbox full"), when its class agrees with the exit
/// status (`temporary`: 4, else 5); None otherwise.
pub fn dsn_from_text(text: &str, temporary: bool) -> Option<&str> {
    let code = text.split(' ').next()?;
    let mut parts = code.split('.');
    let class = parts.next()?;
    let ok = class == if temporary { "4" } else { "5" }
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(code)
}

impl Exit {
    /// new - an exit code with its one-line message.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }

    /// is_temporary - whether the caller should try again later.
    pub fn is_temporary(&self) -> bool {
        dsn_for(i32::from(self.code)).1
    }

    /// from_io - classify an I/O error: resource trouble is temporary,
    /// permission trouble is not.
    pub fn from_io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        let code = match err.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => NOPERM,
            _ => TEMPFAIL,
        };
        Exit::new(code, format!("{context}: {err}"))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_crash_codes_are_temporary() {
        assert!(dsn_for(75).1);
        assert!(dsn_for(1).1);
        assert!(dsn_for(-9).1);
        assert!(!dsn_for(67).1);
        assert_eq!(dsn_for(67).0, "5.1.1");
    }

    #[test]
    fn io_errors_are_temporary_but_permissions_are_not() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(Exit::from_io("x", &full).code, TEMPFAIL);
        let perm = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(Exit::from_io("x", &perm).code, NOPERM);
    }
}
