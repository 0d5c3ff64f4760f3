//! message - read the message on stdin: split off the header, take
//! recipients from it for -t, add what is missing, and stream the rest.
//!
//! Lines end in LF in the spool: CRLF is turned into LF (Postfix's
//! sendmail_fix_line_endings=always). Lines are read in pieces of at most
//! PIECE bytes, so a 10 MB line costs 64 KiB of memory. Nothing is
//! dropped: NUL bytes and 8-bit text pass through as they are.

use std::io::{self, BufRead, Read, Write};

/// Largest piece of a line held at once.
const PIECE: u64 = 64 * 1024;
/// Largest header section we parse; the rest is passed on as body.
const MAX_HEADER: usize = 1024 * 1024;
/// Most header fields we parse.
const MAX_FIELDS: usize = 10_000;

/// Reads stdin as lines (in bounded pieces), CRLF -> LF, and stops at a
/// lone "." unless dots are ignored.
pub struct LineReader<R: BufRead> {
    inner: R,
    ignore_dots: bool,
    at_line_start: bool,
    pending_cr: bool,
    done: bool,
    /// Whether the input's last line had no newline (one is added).
    pub added_newline: bool,
}

impl<R: BufRead> LineReader<R> {
    /// new - wrap stdin.
    pub fn new(inner: R, ignore_dots: bool) -> Self {
        LineReader {
            inner,
            ignore_dots,
            at_line_start: true,
            pending_cr: false,
            done: false,
            added_newline: false,
        }
    }

    /// next_piece - the next piece of a line into `buf` (cleared first);
    /// Ok(false) at the end of the message.
    pub fn next_piece(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        if self.done {
            return Ok(false);
        }
        let n = (&mut self.inner).take(PIECE).read_until(b'\n', buf)?;
        let starts_line = self.at_line_start;
        if self.pending_cr {
            self.pending_cr = false;
            if buf.first() != Some(&b'\n') {
                buf.insert(0, b'\r');
            }
        }
        if n == 0 {
            self.done = true;
            if !starts_line {
                // The input ended inside a line: end it.
                buf.push(b'\n');
                self.added_newline = true;
                self.at_line_start = true;
                return Ok(true);
            }
            return Ok(!buf.is_empty());
        }
        if buf.last() == Some(&b'\n') {
            if buf.len() >= 2 && buf[buf.len() - 2] == b'\r' {
                buf.remove(buf.len() - 2);
            }
            self.at_line_start = true;
            if starts_line && !self.ignore_dots && buf.as_slice() == b".\n" {
                self.done = true;
                buf.clear();
                return Ok(false);
            }
        } else {
            // A piece of a longer line, or the last line without a newline.
            if buf.last() == Some(&b'\r') {
                buf.pop();
                self.pending_cr = true;
            }
            self.at_line_start = false;
            if starts_line && !self.ignore_dots && buf.as_slice() == b"." {
                // "." then EOF also ends the message.
                let more = self.inner.fill_buf()?.is_empty();
                if more {
                    self.done = true;
                    buf.clear();
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// is_line_start - whether the next piece starts a new line.
    pub fn is_line_start(&self) -> bool {
        self.at_line_start
    }
}

/// One header field, all its lines, as read.
#[derive(Debug, Clone)]
pub struct Field {
    pub raw: Vec<u8>,
}

impl Field {
    /// name - the field name, lowercased.
    pub fn name(&self) -> String {
        let end = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        String::from_utf8_lossy(&self.raw[..end])
            .trim()
            .to_ascii_lowercase()
    }
}

/// The header section and what came right after it.
#[derive(Debug, Default)]
pub struct Header {
    pub fields: Vec<Field>,
    /// The first body piece already read (a non-header line), if any.
    pub first_body: Option<Vec<u8>>,
    /// Whether the original had the blank separator line.
    pub had_separator: bool,
}

/// is_field_start - `name:` with a name of printable ASCII but colon and space.
fn is_field_start(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = &line[..colon];
    let name = match name.iter().rposition(|&b| b != b' ' && b != b'\t') {
        Some(i) => &name[..=i],
        None => return false,
    };
    name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// read_header - read header fields until the blank line, a line that is
/// not a header, or the caps.
pub fn read_header<R: BufRead>(r: &mut LineReader<R>) -> io::Result<Header> {
    let mut h = Header::default();
    let mut buf = Vec::new();
    let mut total = 0usize;
    let mut first = true;
    loop {
        let line_start = r.is_line_start();
        if !r.next_piece(&mut buf)? {
            return Ok(h);
        }
        let whole = line_start && buf.last() == Some(&b'\n');
        if first && whole && buf.starts_with(b"From ") {
            // An mbox "From " line at the very top is not part of the message.
            first = false;
            continue;
        }
        first = false;
        if !whole {
            // An over-long line: stop parsing, pass it on as body.
            h.first_body = Some(buf);
            return Ok(h);
        }
        if buf.as_slice() == b"\n" {
            h.had_separator = true;
            return Ok(h);
        }
        total += buf.len();
        let continuation = matches!(buf.first(), Some(b' ') | Some(b'\t'));
        if continuation {
            if let Some(last) = h.fields.last_mut()
                && total <= MAX_HEADER
            {
                last.raw.extend_from_slice(&buf);
                continue;
            }
        } else if is_field_start(&buf) && total <= MAX_HEADER && h.fields.len() < MAX_FIELDS {
            h.fields.push(Field { raw: buf.clone() });
            continue;
        }
        h.first_body = Some(buf);
        return Ok(h);
    }
}

/// addresses - the addresses in an address header (To, Cc, Bcc, ...).
pub fn addresses(field: &Field) -> Vec<String> {
    let Ok((hdr, _)) = mailparse::parse_header(&field.raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match mailparse::addrparse_header(&hdr) {
        Ok(list) => {
            for a in list.iter() {
                match a {
                    mailparse::MailAddr::Single(s) => out.push(s.addr.clone()),
                    mailparse::MailAddr::Group(g) => {
                        out.extend(g.addrs.iter().map(|s| s.addr.clone()))
                    }
                }
            }
        }
        Err(_) => {
            // Be lenient with what we cannot parse: take comma-separated words with an @.
            let v = hdr.get_value();
            for part in v.split(',') {
                let a =
                    posthorn_mail::address::strip_brackets(part.rsplit('<').next().unwrap_or(part));
                if !a.is_empty() && !a.contains(char::is_whitespace) {
                    out.push(a.trim_end_matches('>').to_string());
                }
            }
        }
    }
    out.retain(|a| !a.is_empty());
    out
}

/// copy_body - stream the rest of the message to `w`.
pub fn copy_body<R: BufRead>(r: &mut LineReader<R>, w: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::with_capacity(PIECE as usize + 2);
    while r.next_piece(&mut buf)? {
        w.write_all(&buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], ignore_dots: bool) -> Vec<u8> {
        let mut r = LineReader::new(io::BufReader::new(input), ignore_dots);
        let mut out = Vec::new();
        copy_body(&mut r, &mut out).unwrap();
        out
    }

    #[test]
    fn dots_crlf_and_final_newline() {
        assert_eq!(read_all(b"a\r\n.\r\nb\n", false), b"a\n");
        assert_eq!(read_all(b"a\n.\nb\n", true), b"a\n.\nb\n");
        assert_eq!(read_all(b"a\n..\nb", false), b"a\n..\nb\n");
        assert_eq!(read_all(b"a\n.", false), b"a\n");
        assert_eq!(read_all(b"x\0y\r\n", true), b"x\0y\n");
        assert_eq!(read_all(b"", true), b"");
        assert_eq!(read_all(b"lone\rcr\n", true), b"lone\rcr\n");
    }

    #[test]
    fn long_lines_pass_in_pieces() {
        let mut big = vec![b'x'; 300_000];
        big.extend_from_slice(b"\r\n.\n");
        let out = read_all(&big, false);
        assert_eq!(out.len(), 300_001);
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn header_fields_and_body_start() {
        let input = b"From sender Sat Nov 28\nTo: a@x,\n  b@y\nSubject: hi\nnot a header\nbody\n";
        let mut r = LineReader::new(io::BufReader::new(&input[..]), true);
        let h = read_header(&mut r).unwrap();
        assert_eq!(h.fields.len(), 2);
        assert_eq!(h.fields[0].name(), "to");
        assert_eq!(addresses(&h.fields[0]), ["a@x", "b@y"]);
        assert_eq!(h.first_body.as_deref(), Some(&b"not a header\n"[..]));
        assert!(!h.had_separator);
    }

    #[test]
    fn address_headers() {
        let f = Field {
            raw: b"Cc: \"Doe, J\" <j@x>, =?utf-8?q?K=C3=A4the?= <k@y>, list: m@z, n@z;\n".to_vec(),
        };
        assert_eq!(addresses(&f), ["j@x", "k@y", "m@z", "n@z"]);
    }
}
