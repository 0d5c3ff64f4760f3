//! body - the message octets of DATA or BDAT, checked and converted on
//! their way to the queue, sans I/O: CRLF becomes LF (the spool keeps Unix
//! line ends, as sendmail's input does), and a bare CR or bare LF, a line
//! over 998 octets or a message over the size limit is noted, so the whole
//! message can be refused once its end is reached (RFC 5321 2.3.8 and
//! 4.5.3.1.6; bare line ends are how SMTP smuggling works, CVE-2023-51764).
//! Memory is one output buffer, whatever the message size.

/// Longest text line without its CRLF (RFC 5321 4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 998;

/// What was wrong with a message, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A CR or LF that is not part of a CRLF pair.
    BareLineEnd,
    /// Larger than the limit.
    TooBig,
    /// A line over MAX_TEXT_LINE octets.
    LineTooLong,
}

/// The converter's state between pieces of input.
#[derive(Debug)]
pub struct Body {
    limit: u64,
    /// Octets seen, as sent (CRLF counted as two: SIZE counts them so).
    pub size: u64,
    /// Octets in the current line so far.
    line: usize,
    /// The last octet was a CR whose LF has not come yet.
    cr: bool,
    fault: Option<Fault>,
}

impl Body {
    /// new - a message of at most `limit` octets.
    pub fn new(limit: u64) -> Body {
        Body {
            limit,
            size: 0,
            line: 0,
            cr: false,
            fault: None,
        }
    }

    /// fault - the worst problem seen, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// line_too_long - a line was over the limit where the caller saw it
    /// (on the wire, before dot-unstuffing cut it down).
    pub fn line_too_long(&mut self) {
        self.note(Fault::LineTooLong);
    }

    fn note(&mut self, f: Fault) {
        // BareLineEnd beats TooBig beats LineTooLong.
        let rank = |f: Fault| match f {
            Fault::BareLineEnd => 0,
            Fault::TooBig => 1,
            Fault::LineTooLong => 2,
        };
        if self.fault.is_none_or(|old| rank(f) < rank(old)) {
            self.fault = Some(f);
        }
    }

    /// push - take `input`, append what goes to the queue to `out`. Once
    /// the message is faulty nothing more is appended (it will not be
    /// queued), but the input is still checked to its end.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.size += input.len() as u64;
        if self.size > self.limit {
            self.note(Fault::TooBig);
        }
        let mut from = 0;
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' => {
                    if !self.cr {
                        self.note(Fault::BareLineEnd);
                    }
                    self.cr = false;
                    self.line = 0;
                }
                b'\r' => {
                    if self.cr {
                        self.note(Fault::BareLineEnd);
                    }
                    self.cr = true;
                    // The CR is dropped: copy what came before it.
                    if self.fault.is_none() {
                        out.extend_from_slice(&input[from..i]);
                    }
                    from = i + 1;
                }
                _ => {
                    if self.cr {
                        self.note(Fault::BareLineEnd);
                        self.cr = false;
                    }
                    self.line += 1;
                    if self.line > MAX_TEXT_LINE {
                        self.note(Fault::LineTooLong);
                    }
                }
            }
        }
        if self.fault.is_none() {
            out.extend_from_slice(&input[from..]);
        }
    }

    /// finish - the end of the message: a CR still waiting for its LF is
    /// bare. BDAT data need not end in CRLF (the queue adds nothing).
    pub fn finish(&mut self) -> Option<Fault> {
        if self.cr {
            self.note(Fault::BareLineEnd);
        }
        self.fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(pieces: &[&[u8]], limit: u64) -> (Vec<u8>, Option<Fault>) {
        let mut b = Body::new(limit);
        let mut out = Vec::new();
        for p in pieces {
            b.push(p, &mut out);
        }
        let f = b.finish();
        (out, f)
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(run(&[b"a\r\nb\r\n"], 100), (b"a\nb\n".to_vec(), None));
        // A CRLF split between pieces.
        assert_eq!(run(&[b"a\r", b"\nb\r\n"], 100), (b"a\nb\n".to_vec(), None));
        assert_eq!(run(&[b""], 100), (Vec::new(), None));
    }

    #[test]
    fn bare_line_ends_are_faults() {
        for bad in [
            &b"a\nb\r\n"[..],
            b"a\rb\r\n",
            b"a\r\r\n",
            b"a\r\n.\r",
            b"\n.\n",
            b"\r.\r",
            b"\n.\r\n",
        ] {
            assert_eq!(run(&[bad], 100).1, Some(Fault::BareLineEnd), "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        let (_, f) = run(&[b"0123456789\r\n"], 5);
        assert_eq!(f, Some(Fault::TooBig));
        let long = vec![b'x'; MAX_TEXT_LINE + 1];
        assert_eq!(run(&[&long, b"\r\n"], 10_000).1, Some(Fault::LineTooLong));
        let ok = vec![b'x'; MAX_TEXT_LINE];
        assert_eq!(run(&[&ok, b"\r\n"], 10_000).1, None);
        // The worst fault wins whatever the order.
        assert_eq!(run(&[&long, b"\r\n\n"], 10_000).1, Some(Fault::BareLineEnd));
    }

    proptest! {
        /// Split anywhere, the answer is the same; with no fault the output
        /// is the input with each CRLF made LF.
        #[test]
        fn pieces_do_not_matter(input in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b'.')], 0..200),
            cut in 0usize..200) {
            let cut = cut.min(input.len());
            let whole = run(&[&input], 1000);
            let split = run(&[&input[..cut], &input[cut..]], 1000);
            // A faulty message is dropped whole: only the fault must agree.
            prop_assert_eq!(whole.1, split.1);
            if whole.1.is_none() {
                prop_assert_eq!(&whole.0, &split.0);
                let want: Vec<u8> = String::from_utf8_lossy(&input).replace("\r\n", "\n").into_bytes();
                prop_assert_eq!(whole.0, want);
            }
        }
    }
}
