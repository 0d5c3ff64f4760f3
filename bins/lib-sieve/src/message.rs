//! message - the parts of a message a script looks at: the header as a
//! list of fields (editable, for editheader), decoded values, and the
//! addresses in address fields.
//!
//! Distrusts the message: the header is read up to MAX_HEADER bytes and
//! MAX_FIELDS fields; what lies beyond is not seen by tests (and is kept
//! unchanged in what is stored).

/// The part of a message taken as its header.
pub const MAX_HEADER: usize = 1024 * 1024;
/// Most header fields looked at.
pub const MAX_FIELDS: usize = 10_000;

/// One header field as it appears: name, and the raw value after the
/// colon (continuation lines included, line ends kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub raw: String,
}

impl Field {
    /// value - unfolded, RFC 2047 decoded, blanks trimmed at both ends.
    pub fn value(&self) -> String {
        let unfolded = unfold(&self.raw);
        if unfolded.contains("=?") {
            let line = format!("X: {unfolded}\n");
            if let Ok((h, _)) = mailparse::parse_header(line.as_bytes()) {
                return h.get_value().trim().to_string();
            }
        }
        unfolded.trim().to_string()
    }

    /// is - whether the field has this name (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// unfold - continuation line ends removed (RFC 5322 §2.2.3).
pub fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out
}

/// parse_header - the fields of the header at the start of `msg`, and the
/// offset where the body starts (after the blank line).
pub fn parse_header(msg: &[u8]) -> (Vec<Field>, usize) {
    let mut fields: Vec<Field> = Vec::new();
    let mut at = 0;
    let limit = msg.len().min(MAX_HEADER);
    while at < limit {
        let end = msg[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| at + p + 1);
        let line = &msg[at..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            return (fields, end);
        }
        if (bare[0] == b' ' || bare[0] == b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.raw.push('\n');
                f.raw.push_str(&String::from_utf8_lossy(bare));
            }
        } else if let Some(colon) = bare.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&bare[..colon])
                .trim_end()
                .to_string();
            if fields.len() < MAX_FIELDS && is_field_name(&name) {
                let raw = String::from_utf8_lossy(&bare[colon + 1..]).into_owned();
                fields.push(Field { name, raw });
            }
        } else if at == 0 && bare.starts_with(b"From ") {
            // An mbox From_ line is not a field.
        } else {
            // Not a header line: the body starts here (no blank line).
            return (fields, at);
        }
        at = end;
    }
    (fields, limit)
}

/// render_header - fields back to text, LF line ends, for storing.
pub fn render_header(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(f.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(f.raw.replace("\r\n", "\n").replace('\r', "").as_bytes());
        out.push(b'\n');
    }
    out
}

/// is_field_name - RFC 5322 §3.6.8's field-name: printable US-ASCII
/// except the colon, at most 997 characters.
pub fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 997 && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// The fields the address test may read (RFC 5228 §5.1 names the first
/// seven; the rest hold addresses too).
const ADDRESS_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "resent-from",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-sender",
    "reply-to",
    "resent-reply-to",
    "return-receipt-to",
    "errors-to",
    "disposition-notification-to",
    "delivered-to",
    "envelope-to",
    "x-original-to",
    "x-envelope-to",
    "x-delivered-to",
    "original-recipient",
    "final-recipient",
];

/// is_address_header - whether the address test may read this field.
pub fn is_address_header(name: &str) -> bool {
    ADDRESS_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// An address from a field: its local part and domain, or (when the
/// text is not a valid address) the text alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub all: String,
    pub parts: Option<(String, String)>,
}

/// addresses - the addresses in a field's raw value; groups give their
/// members, an unparsable value gives itself as one invalid address.
pub fn addresses(raw: &str) -> Vec<Address> {
    let v = unfold(raw);
    let v = v.trim();
    if v.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    match mailparse::addrparse(v) {
        Ok(list) => {
            for a in list.iter() {
                match a {
                    mailparse::MailAddr::Single(s) => out.push(address(&s.addr)),
                    mailparse::MailAddr::Group(g) => {
                        out.extend(g.addrs.iter().map(|s| address(&s.addr)))
                    }
                }
            }
        }
        Err(_) => {
            // One bad entry spoils mailparse's whole list: parse the
            // entries one by one, keeping the bad ones as themselves.
            for piece in split_top(v) {
                let piece = match piece.split_once(':') {
                    Some((_, rest))
                        if !piece.contains('<') || piece.find(':') < piece.find('<') =>
                    {
                        rest
                    }
                    _ => piece,
                };
                let piece = piece.trim().trim_end_matches(';').trim();
                if piece.is_empty() {
                    continue;
                }
                match mailparse::addrparse(piece) {
                    Ok(list) => {
                        for a in list.iter() {
                            if let mailparse::MailAddr::Single(s) = a {
                                out.push(address(&s.addr));
                            }
                        }
                    }
                    Err(_) => out.push(Address {
                        all: piece.to_string(),
                        parts: None,
                    }),
                }
            }
        }
    }
    out
}

/// split_top - a list cut at the commas outside quotes, `<>` and comments.
fn split_top(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut angle, mut esc) = (0u32, false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ',' | ';' if !quoted && depth == 0 && !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

/// address - one `local@domain` split at its last `@`.
pub fn address(a: &str) -> Address {
    let a = a.trim();
    let parts = a
        .rsplit_once('@')
        .filter(|(l, d)| !l.is_empty() && !d.is_empty())
        .map(|(l, d)| (l.to_string(), d.to_string()));
    Address {
        all: a.to_string(),
        parts,
    }
}

/// parse_single_address - a single mailbox address as redirect, :from
/// and :addresses take it (`local@domain`, optionally in `<>`), checked
/// strictly, since it becomes an envelope address; returns it bare.
pub fn parse_single_address(s: &str) -> Option<String> {
    let s = s.trim();
    let s = match (s.find('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s,
    };
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty() || local.len() > 64 || domain.is_empty() || domain.len() > 255 {
        return None;
    }
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    let local_ok = if quoted {
        local.bytes().all(|b| b >= 32 && b != 127)
    } else {
        local.split('.').all(|atom| {
            !atom.is_empty()
                && atom.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
                })
        })
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        domain[1..domain.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b".:".contains(&b) || b.is_ascii_alphanumeric())
    } else {
        domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        })
    };
    (local_ok && domain_ok).then(|| s.to_string())
}

/// subaddress - `user` and `detail` of a local part (RFC 5233), split at
/// the first `+`; no `+`, no detail.
pub fn subaddress(local: &str) -> (&str, Option<&str>) {
    match local.split_once('+') {
        Some((u, d)) => (u, Some(d)),
        None => (local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let (f, body) = parse_header(b"Subject: a\n  b\nTo: x@y\r\nBad line\n\nbody");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].value(), "a  b");
        assert_eq!(f[1].value(), "x@y");
        assert_eq!(body, 24);
        let (f, body) = parse_header(b"Subject: =?utf-8?q?caf=C3=A9?=\n\nx");
        assert_eq!(f[0].value(), "café");
        assert_eq!(body, 32);
        assert_eq!(render_header(&f), b"Subject: =?utf-8?q?caf=C3=A9?=\n");
    }

    #[test]
    fn address_lists() {
        let a = addresses("Ann <ann@example.org>, \"B, c\" <b+x@Ex.org>, grp: c@d.e;, junk");
        let all: Vec<&str> = a.iter().map(|a| a.all.as_str()).collect();
        assert_eq!(all[..3], ["ann@example.org", "b+x@Ex.org", "c@d.e"]);
        assert_eq!(a[1].parts, Some(("b+x".into(), "Ex.org".into())));
        assert_eq!(subaddress("b+x+y"), ("b", Some("x+y")));
        assert_eq!(subaddress("b"), ("b", None));
        assert!(addresses("undisclosed-recipients:;").is_empty());
    }

    #[test]
    fn single_addresses() {
        for ok in ["a@b.c", "<a.b+c@d-e.f>", "\"a b\"@c.d", "x@[127.0.0.1]"] {
            assert!(parse_single_address(ok).is_some(), "{ok}");
        }
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b..c", "a@b c", "a..b@c"] {
            assert!(parse_single_address(bad).is_none(), "{bad}");
        }
    }
}
