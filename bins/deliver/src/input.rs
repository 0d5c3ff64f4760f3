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
    /// Length of a leading mbox `From ` line (Postfix's local(8) and
    /// fetchmail may prepend one): it is not part of the message.
    skip: usize,
}

impl Message {
    /// read_stdin - read all of stdin; with `expect` (qrun's `--size`),
    /// exactly that many bytes, or it is an error: a writer that died
    /// half-way must not have half a message delivered.
    pub fn read_stdin(expect: Option<u64>) -> io::Result<Message> {
        Message::read_from(io::stdin().lock(), expect)
    }

    /// read_from - `read_stdin` over any reader.
    fn read_from(r: impl Read, expect: Option<u64>) -> io::Result<Message> {
        let m = Message::read_all(r)?;
        if let Some(n) = expect {
            let got = m.raw_len();
            if got != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("message cut short: {got} of {n} bytes arrived"),
                ));
            }
        }
        Ok(m)
    }

    /// raw_len - the bytes read, a leading From_ line included.
    fn raw_len(&self) -> u64 {
        self.len() + self.skip as u64
    }

    /// read_all - read `stdin` to its end.
    fn read_all(mut stdin: impl Read) -> io::Result<Message> {
        let mut head = Vec::with_capacity(64 * 1024);
        (&mut stdin).take(SPILL as u64).read_to_end(&mut head)?;
        let skip = from_line_len(&head);
        if head.len() < SPILL {
            return Ok(Message {
                head,
                rest: None,
                skip,
            });
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
            skip,
        })
    }

    /// len - the message's size in octets (a leading From_ line left out).
    pub fn len(&self) -> u64 {
        let rest = self
            .rest
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        (self.head.len() - self.skip) as u64 + rest
    }

    /// reader - a fresh reader over the whole message.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        let head = &self.head[self.skip..];
        match &self.rest {
            None => Ok(Box::new(head)),
            Some(f) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(0))?;
                Ok(Box::new(head.chain(f)))
            }
        }
    }

    /// has_field - whether the header holds a field named `name` whose
    /// unfolded value satisfies `is`: how the spam_header line, put there
    /// by smtpd's DMARC quarantine (or a filter before us), is found.
    pub fn has_field(&self, name: &str, is: impl Fn(&str) -> bool) -> bool {
        let scan = &self.head[self.skip..self.head.len().min(HEADER_SCAN)];
        let text = String::from_utf8_lossy(scan);
        let mut cur: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with([' ', '\t']) {
                if let Some(c) = cur.as_mut() {
                    c.push_str(line);
                }
                continue;
            }
            if cur.take().is_some_and(|v| is(&v)) {
                return true;
            }
            if line.is_empty() {
                return false;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                cur = Some(v.to_string());
            }
        }
        cur.is_some_and(|v| is(&v))
    }

    /// delivered_to - the Delivered-To: values (lowercased) that mark an
    /// earlier pass through a mail system. Those above the first Received:
    /// were put there by the MTA that runs us, for this very delivery
    /// (Postfix's local(8) before a mailbox_command), so they do not count:
    /// a real loop went out and came back through at least one Received:.
    pub fn delivered_to(&self) -> Vec<String> {
        let scan = &self.head[self.skip..self.head.len().min(HEADER_SCAN)];
        let mut out = Vec::new();
        let mut seen_received = false;
        for line in scan.split(|&b| b == b'\n') {
            if line.is_empty() || line == b"\r" {
                break;
            }
            if line.len() > 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                seen_received = true;
            }
            if seen_received && line.len() > 13 && line[..13].eq_ignore_ascii_case(b"delivered-to:")
            {
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

/// from_line_len - the length of a leading `From ` line with its newline, or 0.
fn from_line_len(head: &[u8]) -> usize {
    if !head.starts_with(b"From ") {
        return 0;
    }
    match head.iter().position(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(b: &[u8]) -> Message {
        Message {
            head: b.to_vec(),
            rest: None,
            skip: from_line_len(b),
        }
    }

    #[test]
    fn delivered_to_counts_only_below_a_received() {
        let m = msg(
            b"Delivered-To: ann@h\nReceived: by h\nDelivered-To: bob@h\n\nDelivered-To: carl@h\n",
        );
        assert_eq!(m.delivered_to(), ["bob@h"]);
    }

    #[test]
    fn a_message_cut_short_is_an_error() {
        let e = Message::read_from(&b"Subject: x\n\nhal"[..], Some(20)).unwrap_err();
        assert!(e.to_string().contains("15 of 20 bytes"), "{e}");
        let m = Message::read_from(&b"From a b\nSubject: x\n"[..], Some(20)).unwrap();
        assert_eq!(m.len(), 11, "a From_ line is counted as sent, not as kept");
        assert!(Message::read_from(&b"x"[..], None).is_ok());
    }

    #[test]
    fn a_leading_from_line_is_dropped() {
        let m = msg(b"From MAILER-DAEMON Sat Nov 28 12:00:00 2026\nSubject: x\n\nFrom here\n");
        let mut out = Vec::new();
        m.reader().unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"Subject: x\n\nFrom here\n");
    }
}
