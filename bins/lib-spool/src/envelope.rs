//! envelope - the sender, the recipients and their DSN parameters, and the
//! record format that carries them (with the message) into `enqueue`.
//!
//! The format, documented in enqueue(8): LF-terminated records, one type
//! letter each, no CR or NUL anywhere:
//!
//! ```text
//! V1              version, first
//! F<sender>       envelope sender, empty for <>; exactly one
//! T<recipient>    a recipient; one or more
//! N<notify>       DSN NOTIFY of the recipient before it (NEVER or SUCCESS,FAILURE,DELAY)
//! O<orcpt>        DSN ORCPT of the recipient before it (addr-type;xtext)
//! R<ret>          DSN RET: FULL or HDRS
//! E<envid>        DSN ENVID (xtext)
//! B<body>         7BIT, 8BITMIME or BINARYMIME
//! S               SMTPUTF8 was requested
//! X               received from an unauthenticated SMTP client (MX): a
//!                 stranger's message, never DKIM-signed here
//! D               end of envelope
//! <n>\n<n bytes>  message chunks, decimal length; "0\n" ends the message
//! ```
//!
//! A stream that ends before the "0" chunk is a writer that died: nothing is queued.

use std::io::{self, BufRead, Read, Write};

/// Most recipients per message (Postfix's smtpd_recipient_limit is 1000; local submission gets more).
pub const MAX_RECIPIENTS: usize = 10_000;
/// Longest envelope record.
pub const MAX_RECORD: usize = 2048;
/// Largest chunk a writer may announce.
pub const MAX_CHUNK: usize = 1 << 20;

/// One envelope recipient with its DSN parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipient {
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// The envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub body: Option<String>,
    pub smtputf8: bool,
    /// From a stranger (smtpd's MX mode): qrun does not sign it.
    pub external: bool,
}

/// Why an envelope stream was refused.
#[derive(Debug)]
pub enum ReadError {
    /// Malformed records: the writer is broken (exit 65).
    Bad(String),
    /// The stream ended early or could not be read (exit 75: nothing stored).
    Io(io::Error),
    /// The message is larger than allowed (exit 65 with a clear reason).
    TooBig(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Bad(m) => write!(f, "malformed input: {m}"),
            ReadError::Io(e) => write!(f, "reading input: {e}"),
            ReadError::TooBig(n) => write!(f, "message too big (limit {n} bytes)"),
        }
    }
}

fn clean(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

impl Envelope {
    /// check - the rules every envelope obeys, whoever wrote it.
    pub fn check(&self) -> Result<(), String> {
        if !clean(&self.sender) || self.sender.len() > 998 {
            return Err("bad sender".into());
        }
        if self.recipients.is_empty() {
            return Err("no recipients".into());
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(format!("more than {MAX_RECIPIENTS} recipients"));
        }
        for r in &self.recipients {
            if r.address.is_empty() || r.address.len() > 998 || !clean(&r.address) {
                return Err(format!("bad recipient {:?}", r.address));
            }
            for p in r.notify.iter().chain(r.orcpt.iter()) {
                if !clean(p) || p.len() > 1000 {
                    return Err("bad DSN parameter".into());
                }
            }
        }
        for p in self
            .ret
            .iter()
            .chain(self.envid.iter())
            .chain(self.body.iter())
        {
            if !clean(p) || p.len() > 1000 {
                return Err("bad DSN parameter".into());
            }
        }
        Ok(())
    }

    /// write_records - the envelope records, V1 to D (without the message).
    pub fn write_records(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "V1")?;
        writeln!(w, "F{}", self.sender)?;
        for r in &self.recipients {
            writeln!(w, "T{}", r.address)?;
            if let Some(n) = &r.notify {
                writeln!(w, "N{n}")?;
            }
            if let Some(o) = &r.orcpt {
                writeln!(w, "O{o}")?;
            }
        }
        if let Some(r) = &self.ret {
            writeln!(w, "R{r}")?;
        }
        if let Some(e) = &self.envid {
            writeln!(w, "E{e}")?;
        }
        if let Some(b) = &self.body {
            writeln!(w, "B{b}")?;
        }
        if self.smtputf8 {
            writeln!(w, "S")?;
        }
        if self.external {
            writeln!(w, "X")?;
        }
        writeln!(w, "D")
    }

    /// read_records - parse records up to and including D.
    pub fn read_records(r: &mut impl BufRead) -> Result<Envelope, ReadError> {
        let mut env = Envelope::default();
        let mut seen_sender = false;
        let mut first = true;
        loop {
            let line = read_record(r)?;
            if first {
                if line != "V1" {
                    return Err(ReadError::Bad(format!("expected V1, got {line:?}")));
                }
                first = false;
                continue;
            }
            let (kind, val) = line.split_at(
                line.char_indices()
                    .nth(1)
                    .map(|(i, _)| i)
                    .unwrap_or(line.len()),
            );
            match kind {
                "F" if !seen_sender => {
                    env.sender = val.to_string();
                    seen_sender = true;
                }
                "T" => {
                    if env.recipients.len() >= MAX_RECIPIENTS {
                        return Err(ReadError::Bad(format!(
                            "more than {MAX_RECIPIENTS} recipients"
                        )));
                    }
                    env.recipients.push(Recipient {
                        address: val.to_string(),
                        ..Recipient::default()
                    });
                }
                "N" => match env.recipients.last_mut() {
                    Some(rc) => rc.notify = Some(val.to_string()),
                    None => return Err(ReadError::Bad("N before any T".into())),
                },
                "O" => match env.recipients.last_mut() {
                    Some(rc) => rc.orcpt = Some(val.to_string()),
                    None => return Err(ReadError::Bad("O before any T".into())),
                },
                "R" => env.ret = Some(val.to_string()),
                "E" => env.envid = Some(val.to_string()),
                "B" => env.body = Some(val.to_string()),
                "S" if val.is_empty() => env.smtputf8 = true,
                "X" if val.is_empty() => env.external = true,
                "D" if val.is_empty() => break,
                _ => {
                    return Err(ReadError::Bad(format!(
                        "unexpected record {:?}",
                        truncate(&line)
                    )));
                }
            }
        }
        if !seen_sender {
            return Err(ReadError::Bad("no F record".into()));
        }
        env.check().map_err(ReadError::Bad)?;
        Ok(env)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// read_record - one LF-terminated record of at most MAX_RECORD bytes.
fn read_record(r: &mut impl BufRead) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = r
        .take(MAX_RECORD as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(ReadError::Io)?;
    if n == 0 {
        return Err(ReadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "input ended inside the envelope",
        )));
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() > MAX_RECORD {
            return Err(ReadError::Bad(format!(
                "record longer than {MAX_RECORD} bytes"
            )));
        }
        return Err(ReadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "input ended inside a record",
        )));
    }
    buf.pop();
    if buf.contains(&b'\r') || buf.contains(&0) {
        return Err(ReadError::Bad("CR or NUL in a record".into()));
    }
    String::from_utf8(buf).map_err(|_| ReadError::Bad("record is not UTF-8".into()))
}

/// ChunkWriter - writes the message as length-prefixed chunks; `finish` writes "0\n".
#[derive(Debug)]
pub struct ChunkWriter<W: Write> {
    inner: W,
}

impl<W: Write> ChunkWriter<W> {
    /// new - wrap the stream after the D record.
    pub fn new(inner: W) -> Self {
        ChunkWriter { inner }
    }

    /// finish - the final zero chunk: only now is the message complete.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(b"0\n")?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_CHUNK);
        writeln!(self.inner, "{n}")?;
        self.inner.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// copy_chunks - copy the chunked message from `r` to `w`, at most `limit`
/// bytes; returns the message size. Ends only at the "0" chunk.
pub fn copy_chunks(
    r: &mut impl BufRead,
    w: &mut (impl Write + ?Sized),
    limit: u64,
) -> Result<u64, ReadError> {
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let line = read_record(r)?;
        let n: usize = line
            .parse()
            .ok()
            .filter(|n| *n <= MAX_CHUNK && (line == "0" || !line.starts_with('0')))
            .ok_or_else(|| ReadError::Bad(format!("bad chunk length {:?}", truncate(&line))))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(ReadError::TooBig(limit));
        }
        let mut left = n;
        while left > 0 {
            let want = left.min(buf.len());
            r.read_exact(&mut buf[..want]).map_err(ReadError::Io)?;
            w.write_all(&buf[..want]).map_err(ReadError::Io)?;
            left -= want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            sender: "ann@example.org".into(),
            recipients: vec![
                Recipient {
                    address: "bob@x".into(),
                    notify: Some("FAILURE".into()),
                    orcpt: Some("rfc822;bob@x".into()),
                },
                Recipient {
                    address: "carl".into(),
                    ..Recipient::default()
                },
            ],
            ret: Some("HDRS".into()),
            envid: Some("abc".into()),
            body: Some("8BITMIME".into()),
            smtputf8: true,
            external: true,
        }
    }

    #[test]
    fn round_trip_with_message() {
        let mut out = Vec::new();
        sample().write_records(&mut out).unwrap();
        let mut cw = ChunkWriter::new(&mut out);
        cw.write_all(b"Subject: x\n\nbody\n").unwrap();
        cw.finish().unwrap();
        let mut r = io::BufReader::new(&out[..]);
        let env = Envelope::read_records(&mut r).unwrap();
        assert_eq!(env, sample());
        let mut msg = Vec::new();
        let n = copy_chunks(&mut r, &mut msg, 1000).unwrap();
        assert_eq!(n, 17);
        assert_eq!(msg, b"Subject: x\n\nbody\n");
    }

    #[test]
    fn truncated_stream_is_an_io_error_not_a_message() {
        let mut out = Vec::new();
        sample().write_records(&mut out).unwrap();
        out.extend_from_slice(b"5\nabc");
        let mut r = io::BufReader::new(&out[..]);
        Envelope::read_records(&mut r).unwrap();
        let err = copy_chunks(&mut r, &mut Vec::new(), 1000).unwrap_err();
        assert!(matches!(err, ReadError::Io(_)));
        let mut r = io::BufReader::new(&b"V1\nFa\nTb\n5\nhello"[..]);
        assert!(matches!(
            Envelope::read_records(&mut r),
            Err(ReadError::Bad(_))
        ));
    }

    #[test]
    fn bad_records_are_refused() {
        for input in [
            &b"V2\n"[..],
            b"V1\nTb\nD\n",
            b"V1\nFa\nD\n",
            b"V1\nFa\nTb\rc\nD\n",
            b"V1\nFa\nNx\nTb\nD\n",
            b"V1\nFa\nFb\nTc\nD\n",
        ] {
            let mut r = io::BufReader::new(input);
            assert!(
                Envelope::read_records(&mut r).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn size_limit_is_enforced_while_reading() {
        let data = b"5\nhello5\nworld0\n";
        let err = copy_chunks(&mut io::BufReader::new(&data[..]), &mut Vec::new(), 7).unwrap_err();
        assert!(matches!(err, ReadError::TooBig(7)));
        let bad = b"007\n";
        assert!(matches!(
            copy_chunks(&mut io::BufReader::new(&bad[..]), &mut Vec::new(), 7),
            Err(ReadError::Bad(_))
        ));
    }
}
