//! header - a message's header fields as raw octets, and the domain of
//! its From: address (RFC 5322 3.4), which DKIM signing and DMARC need.
//!
//! Lines end in LF or CRLF (the spool keeps LF, the wire CRLF). A field
//! is a line not starting with white space plus its continuation lines;
//! the header ends at the first empty line. Nothing is unfolded or
//! decoded here: the canonicalizers need the octets as they are.

/// Most header fields looked at; the rest count as body for no one (a
/// message with more is refused by no one, but checked only this far).
pub const MAX_FIELDS: usize = 10_000;

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name, as written (no trailing white space).
    pub name: &'a [u8],
    /// The whole field: name, colon, value, every line end included.
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// is - whether the field's name is `name`, ignoring case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// value - the value after the colon, with line ends and no unfolding.
    pub fn value(&self) -> &[u8] {
        match self.raw.iter().position(|&b| b == b':') {
            Some(i) => &self.raw[i + 1..],
            None => b"",
        }
    }

    /// text - the value unfolded, lossily as UTF-8, trimmed.
    pub fn text(&self) -> String {
        let v: Vec<u8> = self
            .value()
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        String::from_utf8_lossy(&v).trim().to_string()
    }
}

/// split - the header fields of `msg` and where its body starts.
pub fn split<'a>(msg: &'a [u8]) -> (Vec<Field<'a>>, usize) {
    let mut fields: Vec<Field> = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    let push = |fields: &mut Vec<Field<'a>>, s: usize, e: usize| {
        if fields.len() < MAX_FIELDS {
            let raw = &msg[s..e];
            let name_end = raw.iter().position(|&b| b == b':').unwrap_or(0);
            let mut name = &raw[..name_end];
            while let [rest @ .., b' ' | b'\t'] = name {
                name = rest;
            }
            fields.push(Field { name, raw });
        }
    };
    while i < msg.len() {
        let end = msg[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| i + p + 1);
        let line = &msg[i..end];
        if line == b"\n" || line == b"\r\n" {
            if let Some(s) = start.take() {
                push(&mut fields, s, i);
            }
            return (fields, end);
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            if let Some(s) = start.take() {
                push(&mut fields, s, i);
            }
            start = Some(i);
        } else if start.is_none() {
            // A continuation with nothing to continue: a field of its own
            // that no name matches.
            start = Some(i);
        }
        i = end;
    }
    if let Some(s) = start {
        push(&mut fields, s, msg.len());
    }
    (fields, msg.len())
}

/// A From: value with no address one can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAddress;

/// from_domains - the domains of every address in a From: value, lower
/// case.
pub fn from_domains(value: &str) -> Result<Vec<String>, NoAddress> {
    let mut out = Vec::new();
    for addr in addresses(value) {
        let Some((_, d)) = addr.rsplit_once('@') else {
            return Err(NoAddress);
        };
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            return Err(NoAddress);
        }
        out.push(d);
    }
    if out.is_empty() {
        Err(NoAddress)
    } else {
        Ok(out)
    }
}

/// addresses - the addr-specs in an address list: each `<...>` when
/// there is one, else the bare mailbox; comments, quoted display names
/// and group names are skipped.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut angle: Option<String> = None;
    let mut chars = value.chars().peekable();
    let mut depth = 0usize;
    let mut in_angle = false;
    let flush = |cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let a = match angle.take() {
            Some(a) => a,
            None => cur.trim().to_string(),
        };
        let a: String = a.chars().filter(|c| !c.is_whitespace()).collect();
        if !a.is_empty() {
            out.push(a);
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '(' if !in_angle || depth > 0 => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {
                if c == '\\' {
                    chars.next();
                }
            }
            '"' => {
                // A quoted string: kept inside <> or a bare local part,
                // dropped as a display name (the <> will say).
                let mut q = String::from('"');
                while let Some(c) = chars.next() {
                    q.push(c);
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                q.push(n);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                if in_angle {
                    if let Some(a) = angle.as_mut() {
                        a.push_str(&q);
                    }
                } else {
                    cur.push_str(&q);
                }
            }
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' if in_angle => in_angle = false,
            _ if in_angle => {
                if let Some(a) = angle.as_mut() {
                    a.push(c);
                }
            }
            ':' => cur.clear(), // a group's name
            ',' | ';' => flush(&mut cur, &mut angle, &mut out),
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut angle, &mut out);
    // A source route (<@a,@b:user@d>) keeps only the mailbox.
    out.into_iter()
        .map(|a| match a.rsplit_once(':') {
            Some((_, m)) if a.starts_with('@') => m.to_string(),
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_body() {
        let m = b"From: a@b\r\nSubject: one\r\n two\r\nX:y\n\nbody\n";
        let (f, b) = split(m);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].name, b"Subject");
        assert_eq!(f[1].raw, b"Subject: one\r\n two\r\n");
        assert_eq!(f[1].text(), "one two");
        assert_eq!(&m[b..], b"body\n");
        let (f, b) = split(b"A: 1\nB : 2");
        assert_eq!(f.len(), 2);
        assert!(f[1].is("b"));
        assert_eq!(b, 10);
    }

    #[test]
    fn from_addresses() {
        for (v, want) in [
            ("ann@Example.ORG", vec!["example.org"]),
            ("Ann <ann@example.org>", vec!["example.org"]),
            (
                "\"Doe, <x@evil.test>\" <d@example.org>",
                vec!["example.org"],
            ),
            (
                "a@x.test (comment <c@evil.test>), b@y.test",
                vec!["x.test", "y.test"],
            ),
            ("friends: a@x.test, b@x.test;", vec!["x.test", "x.test"]),
            ("<@route.test:u@z.test>", vec!["z.test"]),
        ] {
            assert_eq!(from_domains(v).unwrap(), want, "{v}");
        }
        assert!(from_domains("undisclosed").is_err());
        assert!(from_domains("").is_err());
        assert!(from_domains("a@").is_err());
    }
}
