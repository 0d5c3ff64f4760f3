//! input - the message from stdin, read once so it can go to several places.
//!
//! Small messages stay in memory; past SPILL bytes the rest goes to an
//! unlinked temporary file, so a huge message costs disk, not memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

const SPILL: usize = 32 * 1024 * 1024;
/// The part of the header we look at for Delivered-To loops.
const HEADER_SCAN: usize = 256 * 1024;

/// The message, in memory and maybe partly in a temporary file.
#[derive(Debug)]
pub struct Message {
    head: Vec<u8>,
    rest: Option<File>,
}

impl Message {
    /// read_stdin - read all of stdin.
    pub fn read_stdin() -> io::Result<Message> {
        let mut stdin = io::stdin().lock();
        let mut head = Vec::with_capacity(64 * 1024);
        (&mut stdin).take(SPILL as u64).read_to_end(&mut head)?;
        if head.len() < SPILL {
            return Ok(Message { head, rest: None });
        }
        let dir = std::env::var_os("TMPDIR").unwrap_or_else(|| "/tmp".into());
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(&dir)?;
        io::copy(&mut stdin, &mut f)?;
        f.flush()?;
        Ok(Message {
            head,
            rest: Some(f),
        })
    }

    /// reader - a fresh reader over the whole message.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        match &self.rest {
            None => Ok(Box::new(&self.head[..])),
            Some(f) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(0))?;
                Ok(Box::new((&self.head[..]).chain(f)))
            }
        }
    }

    /// delivered_to - the Delivered-To: values in the header (lowercased).
    pub fn delivered_to(&self) -> Vec<String> {
        let scan = &self.head[..self.head.len().min(HEADER_SCAN)];
        let mut out = Vec::new();
        for line in scan.split(|&b| b == b'\n') {
            if line.is_empty() || line == b"\r" {
                break;
            }
            if line.len() > 13 && line[..13].eq_ignore_ascii_case(b"delivered-to:") {
                out.push(
                    String::from_utf8_lossy(&line[13..])
                        .trim()
                        .to_ascii_lowercase(),
                );
            }
        }
        out
    }
}
