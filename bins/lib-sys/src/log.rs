//! log - one line per event, to syslog (facility mail) or to stderr.
//!
//! syslog(3) from libc rather than the `syslog` crate: the crate was seen to
//! lose messages after syslogd restarts and to fall back to UDP silently;
//! libc reconnects to /dev/log by itself.

use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Syslog,
    Stderr,
}

static SINK: OnceLock<(Sink, String)> = OnceLock::new();

/// Severity of a log line (syslog priorities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// init - choose the sink once: `to_stderr` for instances and tests, else syslog.
pub fn init(program: &str, to_stderr: bool) {
    let tag = format!("posthorn/{program}");
    if !to_stderr && let Ok(c) = CString::new(tag.clone()) {
        // openlog keeps the pointer: leak it on purpose, once per process.
        let ident: &'static CString = Box::leak(Box::new(c));
        // SAFETY: ident lives for the rest of the process.
        unsafe {
            libc::openlog(
                ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_MAIL,
            )
        };
    }
    let _ = SINK.set((
        if to_stderr {
            Sink::Stderr
        } else {
            Sink::Syslog
        },
        tag,
    ));
}

/// is_initialized - whether init ran (before it, errors go to stderr only once).
pub fn is_initialized() -> bool {
    SINK.get().is_some()
}

/// to_stderr - whether log lines go to stderr.
pub fn to_stderr() -> bool {
    matches!(SINK.get(), Some((Sink::Stderr, _)))
}

/// write - emit one line; control characters are escaped so a log line
/// is always one line whatever an address contains.
pub fn write(level: Level, text: &str) {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let (sink, tag) = match SINK.get() {
        Some((s, t)) => (*s, t.as_str()),
        None => (Sink::Stderr, "posthorn"),
    };
    match sink {
        Sink::Stderr => {
            // One write(2) per line: several processes may share the file,
            // and stderr is unbuffered (writeln! would write piecemeal).
            let line = format!("{tag}[{}]: {clean}\n", std::process::id());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        Sink::Syslog => {
            let pri = match level {
                Level::Info => libc::LOG_INFO,
                Level::Warning => libc::LOG_WARNING,
                Level::Error => libc::LOG_ERR,
            };
            if let Ok(c) = CString::new(clean) {
                // SAFETY: "%s" with one valid C string argument.
                unsafe { libc::syslog(pri, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
    }
}

/// info - log an informational event.
#[macro_export]
macro_rules! info {
    ($($a:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($a)*)) };
}

/// warn - log a warning.
#[macro_export]
macro_rules! warning {
    ($($a:tt)*) => { $crate::log::write($crate::log::Level::Warning, &format!($($a)*)) };
}

/// error - log an error.
#[macro_export]
macro_rules! error {
    ($($a:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($a)*)) };
}
