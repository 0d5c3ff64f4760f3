//! qfile - the queue file: a header of typed records, then the message.
//!
//! ```text
//! POSTHORN-Q1\n
//! I<queue id>\n  A<arrival: unix seconds.microseconds>\n  U<submitting uid>\n
//! V1 ... D        the envelope records of envelope.rs
//! M<20 digits>\n  the message size
//! <the message, exactly that many bytes, to the end of the file>
//! ```
//!
//! The size doubles as Postfix's END record: a file whose length does not
//! match is refused, never half-delivered.

use crate::QueueId;
use crate::envelope::{Envelope, ReadError};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

const MAGIC: &str = "POSTHORN-Q1";

/// The header of a queue file, and where its message lies.
#[derive(Debug, Clone)]
pub struct QueueFile {
    pub id: QueueId,
    /// Arrival time, Unix seconds, and the microseconds within that second.
    pub arrival: u64,
    pub arrival_micros: u32,
    pub uid: u32,
    pub envelope: Envelope,
    pub msg_offset: u64,
    pub msg_size: u64,
}

impl QueueFile {
    /// arrival_secs - the arrival time as fractional Unix seconds, for delay= in logs.
    pub fn arrival_secs(&self) -> f64 {
        self.arrival as f64 + f64::from(self.arrival_micros) / 1e6
    }
}

/// write_header - everything before the message; the size is a placeholder
/// that `finish_size` fills in once the message is written.
pub fn write_header(
    w: &mut impl Write,
    id: &QueueId,
    arrival: std::time::Duration,
    uid: u32,
    env: &Envelope,
) -> io::Result<()> {
    writeln!(w, "{MAGIC}")?;
    writeln!(w, "I{id}")?;
    writeln!(w, "A{}.{:06}", arrival.as_secs(), arrival.subsec_micros())?;
    writeln!(w, "U{uid}")?;
    env.write_records(w)?;
    writeln!(w, "M{:020}", 0)
}

/// finish_size - write the real size into the M record, found `offset` bytes
/// before the message.
pub fn finish_size(f: &mut File, msg_offset: u64, size: u64) -> io::Result<()> {
    f.seek(SeekFrom::Start(msg_offset - 22))?;
    write!(f, "M{size:020}")?;
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

/// read_header - parse a queue file's header and check its length.
pub fn read_header(f: &mut File) -> Result<QueueFile, String> {
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(&mut *f);
    let mut offset: u64 = 0;
    fn line(r: &mut BufReader<&mut File>, offset: &mut u64) -> Result<String, String> {
        let mut buf = Vec::new();
        let n = r
            .by_ref()
            .take(4096)
            .read_until(b'\n', &mut buf)
            .map_err(|e| e.to_string())?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Err("truncated header".into());
        }
        *offset += n as u64;
        buf.pop();
        String::from_utf8(buf).map_err(|_| "header is not UTF-8".to_string())
    }
    if line(&mut r, &mut offset)? != MAGIC {
        return Err("not a Posthorn queue file".into());
    }
    let id = line(&mut r, &mut offset)?
        .strip_prefix('I')
        .map(QueueId::try_from)
        .ok_or("no I record")??;
    let a = line(&mut r, &mut offset)?;
    let a = a.strip_prefix('A').ok_or("bad A record")?;
    let (secs, micros) = a.split_once('.').unwrap_or((a, "0"));
    let arrival: u64 = secs.parse().map_err(|_| "bad A record")?;
    let arrival_micros: u32 = micros
        .parse()
        .ok()
        .filter(|m| *m < 1_000_000)
        .ok_or("bad A record")?;
    let uid = line(&mut r, &mut offset)?
        .strip_prefix('U')
        .and_then(|s| s.parse().ok())
        .ok_or("bad U record")?;
    // The envelope records are read by their own parser; count their bytes.
    let mut counted = CountingReader {
        inner: &mut r,
        n: 0,
    };
    let envelope = Envelope::read_records(&mut counted).map_err(|e| match e {
        ReadError::Bad(m) => m,
        other => other.to_string(),
    })?;
    offset += counted.n;
    let m = line(&mut r, &mut offset)?;
    let size: u64 = m
        .strip_prefix('M')
        .and_then(|s| s.parse().ok())
        .ok_or("bad M record")?;
    if offset + size != len {
        return Err(format!(
            "length {len} does not match header {offset} + message {size}"
        ));
    }
    Ok(QueueFile {
        id,
        arrival,
        arrival_micros,
        uid,
        envelope,
        msg_offset: offset,
        msg_size: size,
    })
}

/// A BufRead that counts the bytes consumed through it.
struct CountingReader<'a, R: BufRead> {
    inner: &'a mut R,
    n: u64,
}

impl<R: BufRead> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.n += amt as u64;
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recipient;

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let id = QueueId::generate(1);
        let env = Envelope {
            sender: "a@b".into(),
            recipients: vec![Recipient {
                address: "c@d".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        write_header(
            &mut f,
            &id,
            std::time::Duration::from_micros(1_234_000_250),
            1000,
            &env,
        )
        .unwrap();
        let off = f.stream_position().unwrap();
        f.write_all(b"Subject: hi\n\nyo\n").unwrap();
        finish_size(&mut f, off, 16).unwrap();
        let q = read_header(&mut f).unwrap();
        assert_eq!(q.id, id);
        assert_eq!((q.arrival, q.arrival_micros), (1234, 250));
        assert_eq!(q.uid, 1000);
        assert_eq!(q.envelope, env);
        assert_eq!(q.msg_offset, off);
        assert_eq!(q.msg_size, 16);
        // A file cut short is refused.
        f.set_len(off + 10).unwrap();
        assert!(read_header(&mut f).unwrap_err().contains("does not match"));
    }
}
