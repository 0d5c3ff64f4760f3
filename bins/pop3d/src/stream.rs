//! stream - a message file to the wire, a buffer at a time: bare LF to
//! CRLF, a leading `.` doubled (RFC 1939 byte-stuffing), and for TOP only
//! the header, the blank line and the first n body lines. Memory stays at
//! one buffer whatever the message size.

use std::io::{BufRead, BufReader, Read, Write};

/// How much of the message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    /// TOP: the header and this many body lines.
    Top(usize),
}

/// The converter's state between buffers.
#[derive(Debug)]
struct Stuffer {
    part: Part,
    at_line_start: bool,
    /// Octets of the current line so far, and whether the last was CR.
    line_len: usize,
    last_cr: bool,
    in_header: bool,
    body_lines: usize,
    done: bool,
}

impl Stuffer {
    /// new - at the start of a message.
    fn new(part: Part) -> Stuffer {
        Stuffer {
            part,
            at_line_start: true,
            line_len: 0,
            last_cr: false,
            in_header: true,
            body_lines: 0,
            done: false,
        }
    }

    /// limit_reached - for TOP, whether the next line must not be sent.
    fn limit_reached(&self) -> bool {
        match self.part {
            Part::Whole => false,
            Part::Top(n) => !self.in_header && self.body_lines >= n,
        }
    }

    /// push - convert `input` into `out`.
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.done {
            if self.at_line_start {
                if self.limit_reached() {
                    self.done = true;
                    return;
                }
                if input[0] == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            match find_lf(input) {
                Some(i) => {
                    let seg = &input[..i];
                    out.extend_from_slice(seg);
                    if !seg.is_empty() {
                        self.last_cr = seg[seg.len() - 1] == b'\r';
                        self.line_len += seg.len();
                    }
                    if !self.last_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    self.end_line();
                    input = &input[i + 1..];
                }
                None => {
                    out.extend_from_slice(input);
                    self.last_cr = input[input.len() - 1] == b'\r';
                    self.line_len += input.len();
                    input = &[];
                }
            }
        }
    }

    /// end_line - a line ended: count it for TOP.
    fn end_line(&mut self) {
        let empty = self.line_len == 0 || (self.line_len == 1 && self.last_cr);
        if self.in_header {
            if empty {
                self.in_header = false;
            }
        } else {
            self.body_lines += 1;
        }
        self.at_line_start = true;
        self.line_len = 0;
        self.last_cr = false;
    }

    /// finish - end an unterminated last line, then the terminating dot.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start && !self.done {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// find_lf - the index of the first LF in `b`, eight octets at a time:
/// a byte-by-byte search was half of what RETR cost.
fn find_lf(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        // A zero octet in v is an LF in c; the lowest flagged octet is
        // always a true one (a borrow only flags octets above it).
        let v = u64::from_le_bytes(w) ^ LFS;
        let z = v.wrapping_sub(ONES) & !v & HIGHS;
        if z != 0 {
            return Some(at + (z.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|i| at + i)
}

/// send - stream `file` to `w` as the body of a RETR or TOP reply, with the
/// terminating `.`. Returns the octets of the message part sent.
pub fn send(file: impl Read, part: Part, w: &mut impl Write) -> std::io::Result<u64> {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut s = Stuffer::new(part);
    let mut out = Vec::with_capacity(66 * 1024);
    let mut sent = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        s.push(buf, &mut out);
        r.consume(n);
        sent += out.len() as u64;
        w.write_all(&out)?;
        out.clear();
        if s.done {
            break;
        }
    }
    s.finish(&mut out);
    w.write_all(&out)?;
    Ok(sent)
}

/// crlf_size - the size of `file` with CRLF line ends and a final line
/// end, before stuffing: what LIST and STAT report and RETR sends.
pub fn crlf_size(file: impl Read) -> std::io::Result<u64> {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let (mut size, mut last, mut prev_cr) = (0u64, b'\n', false);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        for &b in buf {
            if b == b'\n' && !prev_cr {
                size += 1;
            }
            prev_cr = b == b'\r';
            last = b;
        }
        size += buf.len() as u64;
        let n = buf.len();
        r.consume(n);
    }
    if last != b'\n' {
        size += 2;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], part: Part) -> Vec<u8> {
        let mut out = Vec::new();
        send(input, part, &mut out).unwrap();
        out
    }

    #[test]
    fn known_answers() {
        let table: &[(&[u8], Part, &[u8])] = &[
            (b"A: b\n\nbody\n", Part::Whole, b"A: b\r\n\r\nbody\r\n.\r\n"),
            (
                b"A: b\n\n.dot\n..two\n",
                Part::Whole,
                b"A: b\r\n\r\n..dot\r\n...two\r\n.\r\n",
            ),
            (b"A: b\r\n\r\nx\r\n", Part::Whole, b"A: b\r\n\r\nx\r\n.\r\n"),
            (
                b"A: b\n\nno end",
                Part::Whole,
                b"A: b\r\n\r\nno end\r\n.\r\n",
            ),
            (b"", Part::Whole, b".\r\n"),
            (
                b"A: b\nC: d\n\n1\n2\n3\n",
                Part::Top(0),
                b"A: b\r\nC: d\r\n\r\n.\r\n",
            ),
            (
                b"A: b\n\n1\n.2\n3\n",
                Part::Top(2),
                b"A: b\r\n\r\n1\r\n..2\r\n.\r\n",
            ),
            (
                b"A: b\r\n\r\n1\r\n2\r\n",
                Part::Top(1),
                b"A: b\r\n\r\n1\r\n.\r\n",
            ),
            (b"A: b\nC: d\n", Part::Top(0), b"A: b\r\nC: d\r\n.\r\n"),
            (b"A: b\n\n1\n", Part::Top(10), b"A: b\r\n\r\n1\r\n.\r\n"),
        ];
        for (input, part, want) in table {
            assert_eq!(
                String::from_utf8_lossy(&run(input, *part)),
                String::from_utf8_lossy(want),
                "{:?} {part:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn lf_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                // Octets around LF that could fool a word-at-a-time search.
                let mut b: Vec<u8> = (0..len).map(|i| [0x0b, 0x09, 0x8a, 0x00][i % 4]).collect();
                let want = if at < len {
                    b[at] = b'\n';
                    if at + 1 < len {
                        b[at + 1] = b'\n';
                    }
                    Some(at)
                } else {
                    None
                };
                assert_eq!(find_lf(&b), want, "{len} {at}");
                assert_eq!(find_lf(&b), b.iter().position(|&c| c == b'\n'));
            }
        }
    }

    #[test]
    fn size_matches_what_is_sent_unstuffed() {
        for input in [
            &b"A: b\n\nbody\n"[..],
            b"x\r\ny\n",
            b"no end",
            b"",
            b"\n\n\n",
        ] {
            let sent = run(input, Part::Whole);
            let dots = input
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"."))
                .count();
            assert_eq!(
                crlf_size(input).unwrap() as usize,
                sent.len() - 3 - dots,
                "{input:?}"
            );
        }
    }

    /// A reader that hands out one octet at a time: line state must carry
    /// across buffers (a dot or CRLF split between reads).
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || b.is_empty() {
                return Ok(0);
            }
            b[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn split_buffers_give_the_same_answer() {
        let input = b"A: b\r\n\r\n.x\r\n\r\n.\nlast";
        for part in [Part::Whole, Part::Top(1), Part::Top(2)] {
            let mut out = Vec::new();
            send(Trickle(input), part, &mut out).unwrap();
            assert_eq!(out, run(input, part), "{part:?}");
        }
    }
}
