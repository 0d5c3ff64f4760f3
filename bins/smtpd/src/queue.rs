//! queue - one message handed to `enqueue` through a pipe, as sendmail
//! does: the envelope records, then the queue ID enqueue has chosen (it
//! goes into our Received: field), then the message in chunks. Only when
//! enqueue exits 0 after the final chunk is the message in the spool; a
//! message we drop (refused, or the client went away) is ended without the
//! final chunk, and enqueue stores nothing.

use posthorn_mail::Config;
use posthorn_spool::envelope::{ChunkWriter, Envelope};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Why the queue would not take a message.
#[derive(Debug)]
pub enum Refused {
    /// Try again later (451 4.3.0): a full disk, a broken spool.
    Temporary(String),
    /// Never (554 5.3.4 or the like): enqueue said the data is bad.
    Permanent(String),
}

/// A message on its way into the queue.
#[derive(Debug)]
pub struct Queued {
    child: Child,
    input: ChunkWriter<BufWriter<ChildStdin>>,
    pub id: String,
    /// Held back until the whole message is in (mail authentication: the
    /// Authentication-Results field goes on top, and a DMARC reject must
    /// be able to take it all back), and where the client's part starts.
    held: Option<Vec<u8>>,
    message_at: usize,
    /// Held only until the end of the header, to remove forged
    /// Authentication-Results fields naming this host (unchecked mail).
    header_only: Option<String>,
}

impl Queued {
    /// start - run enqueue, send the envelope, read back the queue ID;
    /// `own_trace`: we write the Received: field, enqueue need not (`-s`,
    /// which it believes only from our account; see enqueue(8)).
    pub fn start(cfg: &Config, env: &Envelope, own_trace: bool) -> Result<Queued, Refused> {
        let program = cfg.helper("enqueue");
        let mut child = Command::new(&program)
            .args(cfg.args())
            .args(if own_trace { &["-s"][..] } else { &[][..] })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Refused::Temporary(format!("running {}: {e}", program.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Refused::Temporary("enqueue: no pipes".into()));
        };
        let mut w = BufWriter::with_capacity(64 * 1024, stdin);
        let id = env
            .write_records(&mut w)
            .and_then(|()| w.flush())
            .and_then(|()| read_id(stdout));
        match id {
            Ok(id) => Ok(Queued {
                child,
                input: ChunkWriter::new(w),
                id,
                held: None,
                message_at: 0,
                header_only: None,
            }),
            Err(_) => {
                drop(w);
                Err(refused(&mut child))
            }
        }
    }

    /// write - more of the message (kept here while held).
    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        let Some(h) = self.held.as_mut() else {
            return self.input.write_all(b);
        };
        h.extend_from_slice(b);
        let Some(host) = &self.header_only else {
            return Ok(());
        };
        // The header is complete (or absurdly long): clean it and let the
        // rest stream through.
        let msg = &h[self.message_at..];
        let done = msg.starts_with(b"\n") || msg.windows(2).any(|w| w == b"\n\n");
        if done || msg.len() > HEADER_HOLD {
            let clean = crate::mailauth::strip_ours(msg, host);
            self.header_only = None;
            return self.release(b"", &clean);
        }
        Ok(())
    }

    /// hold_header - hold only the header, and take out the
    /// Authentication-Results fields that claim `hostname`.
    pub fn hold_header(&mut self, hostname: &str) {
        self.held = Some(Vec::new());
        self.header_only = Some(hostname.to_string());
    }

    /// hold - keep what is written from now on until `release`; the
    /// session's size limit bounds it.
    pub fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// mark_message - what is written from now on is the client's message.
    pub fn mark_message(&mut self) {
        self.message_at = self.held.as_ref().map_or(0, Vec::len);
    }

    /// held - what was held: our own part and the client's message.
    pub fn held(&self) -> Option<(&[u8], &[u8])> {
        self.held
            .as_ref()
            .map(|h| (&h[..self.message_at], &h[self.message_at..]))
    }

    /// release - send `top`, then our held part, then `message` in place
    /// of the client's, and stop holding.
    pub fn release(&mut self, top: &[u8], message: &[u8]) -> io::Result<()> {
        let Some(h) = self.held.take() else {
            return Ok(());
        };
        self.input.write_all(top)?;
        self.input.write_all(&h[..self.message_at])?;
        self.input.write_all(message)
    }

    /// commit - the final chunk; Ok when enqueue has made it durable.
    pub fn commit(mut self) -> Result<String, Refused> {
        let sent = self.input.finish().map(drop);
        if sent.is_err() {
            return Err(refused(&mut self.child));
        }
        match self.child.wait() {
            Ok(s) if s.success() => {
                // enqueue's own log line, when the log goes to stderr.
                let mut log = Vec::new();
                if let Some(e) = self.child.stderr.as_mut() {
                    let _ = e.take(64 * 1024).read_to_end(&mut log);
                }
                if !log.is_empty() {
                    let _ = io::stderr().write_all(&log);
                }
                Ok(self.id)
            }
            _ => Err(refused(&mut self.child)),
        }
    }

    /// abort - end the stream without the final chunk: nothing is queued.
    pub fn abort(mut self) {
        drop(self.input);
        let _ = self.child.wait();
    }
}

/// Most octets held while waiting for the end of a header.
const HEADER_HOLD: usize = 256 * 1024;

/// read_id - the queue ID line enqueue prints before the message.
fn read_id(stdout: ChildStdout) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(stdout).take(64).read_line(&mut line)?;
    let id = line.trim_end();
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id.to_string())
    } else {
        Err(io::Error::other("enqueue gave no queue ID"))
    }
}

/// refused - enqueue's exit status and message as a refusal: exit 65 is
/// bad data (permanent), anything else temporary.
fn refused(child: &mut Child) -> Refused {
    let mut err = String::new();
    if let Some(e) = child.stderr.as_mut() {
        let _ = e.take(1000).read_to_string(&mut err);
    }
    let status = child.wait();
    // enqueue's own error is its last line ("enqueue: why"); log lines
    // may come before it when the log goes to stderr.
    let why = err
        .lines()
        .rev()
        .find(|l| l.starts_with("enqueue: "))
        .or_else(|| err.lines().last())
        .unwrap_or("enqueue failed")
        .to_string();
    match status.ok().and_then(|s| s.code()) {
        Some(c) if c == i32::from(posthorn_sys::exit::DATAERR) => Refused::Permanent(why),
        _ => Refused::Temporary(why),
    }
}
