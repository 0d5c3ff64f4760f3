//! fetch - FETCH data items rendered from a message: ENVELOPE, BODY and
//! BODYSTRUCTURE (with extension data, message/rfc822 nested), body
//! sections per RFC 3501 §6.4.5 with partial ranges, INTERNALDATE.
//!
//! Distrusts header text: every string goes out as a quoted string only
//! when it is 7-bit without CR, LF, NUL, `"` or `\` trouble, else as a
//! literal, so no header can break the response's syntax.

use crate::command::{Section, SectionText};
use crate::mime::{self, Part};
use std::io::Write;

/// string - an IMAP string: quoted when safe, else a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let safe = s.len() < 1024 && s.iter().all(|&c| (0x20..0x7f).contains(&c));
    if safe {
        out.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        let _ = write!(out, "{{{}}}\r\n", s.len());
        out.extend_from_slice(s);
    }
}

/// nstring - a string or NIL.
pub fn nstring(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s.as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// astring_out - a mailbox name or other token: an atom when it is one.
pub fn astring(out: &mut Vec<u8>, s: &str) {
    let atom = !s.is_empty()
        && s.bytes()
            .all(|c| c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c))
        && !s.eq_ignore_ascii_case("NIL");
    if atom {
        out.extend_from_slice(s.as_bytes());
    } else {
        string(out, s.as_bytes());
    }
}

/// An address: (name, adl, mailbox, host); a group start has no host,
/// a group end neither mailbox nor host.
type Addr = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// addresses - an address-list header value, RFC 5322 loosely: names,
/// angle addresses, groups, comments dropped. Encoded words stay encoded
/// (clients decode them).
pub fn addresses(v: &str) -> Vec<Addr> {
    let mut out = Vec::new();
    // Tokenize, respecting quotes, comments and angle brackets.
    let mut items: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    let mut group: Option<String> = None;
    let flush = |cur: &mut String, items: &mut Vec<String>| {
        if !cur.trim().is_empty() {
            items.push(cur.trim().to_string());
        }
        cur.clear();
    };
    let mut pending: Vec<(String, bool)> = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                cur.push('"');
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                        continue;
                    }
                    if d == '"' {
                        break;
                    }
                    cur.push(d);
                }
                cur.push('"');
            }
            '(' => {
                let mut depth = 1;
                for d in chars.by_ref() {
                    match d {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                cur.push(' ');
            }
            '<' => {
                cur.push('<');
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == '>' {
                        break;
                    }
                }
            }
            ':' if group.is_none() => {
                let name = cur.trim().trim_matches('"').to_string();
                cur.clear();
                group = Some(name.clone());
                pending.push((name, true));
            }
            ',' => {
                flush(&mut cur, &mut items);
                pending.extend(items.drain(..).map(|i| (i, false)));
            }
            ';' if group.is_some() => {
                flush(&mut cur, &mut items);
                pending.extend(items.drain(..).map(|i| (i, false)));
                pending.push((String::new(), true));
                group = None;
            }
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut items);
    pending.extend(items.drain(..).map(|i| (i, false)));
    if group.is_some() {
        pending.push((String::new(), true));
    }
    for (text, is_group) in pending {
        if is_group {
            if text.is_empty() {
                out.push((None, None, None, None));
            } else {
                out.push((None, None, Some(text), None));
            }
            continue;
        }
        let (name, spec) = match (text.find('<'), text.rfind('>')) {
            (Some(a), Some(b)) if a < b => {
                let n = text[..a].trim().trim_matches('"').trim().to_string();
                (
                    if n.is_empty() { None } else { Some(n) },
                    text[a + 1..b].trim().to_string(),
                )
            }
            _ => (None, text.trim_matches('"').trim().to_string()),
        };
        // A source route `@a,@b:` before the address is dropped.
        let spec = spec.rsplit(':').next().unwrap_or(&spec).trim().to_string();
        if spec.is_empty() && name.is_none() {
            continue;
        }
        let (mailbox, host) = match spec.rsplit_once('@') {
            Some((m, h)) => (m.trim_matches('"').to_string(), Some(h.to_string())),
            None => (spec.clone(), Some(String::new())),
        };
        out.push((name, None, Some(mailbox), host));
    }
    out
}

/// addr_list - `((name adl mailbox host) ...)` or NIL.
fn addr_list(out: &mut Vec<u8>, v: Option<&String>) {
    let list = v.map(|v| addresses(v)).unwrap_or_default();
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (name, adl, mailbox, host) in list {
        out.push(b'(');
        nstring(out, name.as_deref());
        out.push(b' ');
        nstring(out, adl.as_deref());
        out.push(b' ');
        nstring(out, mailbox.as_deref());
        out.push(b' ');
        nstring(out, host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// envelope - the ENVELOPE of the message whose header is `header`.
pub fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let f = mime::fields(header);
    let get = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let from = get("from");
    out.push(b'(');
    nstring(out, get("date").as_deref());
    out.push(b' ');
    nstring(out, get("subject").as_deref());
    for (i, key) in ["from", "sender", "reply-to", "to", "cc", "bcc"]
        .iter()
        .enumerate()
    {
        out.push(b' ');
        let v = get(key).filter(|v| !v.is_empty());
        // Sender and Reply-To default to From (RFC 3501 §7.4.2).
        let v = if (i == 1 || i == 2) && v.is_none() {
            from.clone()
        } else {
            v
        };
        addr_list(out, v.as_ref());
    }
    out.push(b' ');
    nstring(out, get("in-reply-to").as_deref());
    out.push(b' ');
    nstring(out, get("message-id").as_deref());
    out.push(b')');
}

/// params - `("name" "value" ...)` or NIL; values that decoded to 8-bit
/// go out as RFC 2047 words.
fn params(out: &mut Vec<u8>, p: &[(String, String)]) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        if v.is_ascii() {
            string(out, v.as_bytes());
        } else {
            use base64::Engine;
            let w = format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
            );
            string(out, w.as_bytes());
        }
    }
    out.push(b')');
}

/// body - BODY (`ext` false) or BODYSTRUCTURE (`ext` true) of a part.
pub fn body(out: &mut Vec<u8>, msg: &[u8], p: &Part, ext: bool) {
    out.push(b'(');
    if p.is_multipart() {
        for c in &p.children {
            body(out, msg, c, ext);
        }
        out.push(b' ');
        string(out, p.subtype.to_ascii_uppercase().as_bytes());
        if ext {
            out.push(b' ');
            params(out, &p.params);
            extension(out, p);
        }
        out.push(b')');
        return;
    }
    string(out, p.mtype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(out, p.subtype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.id.as_deref());
    out.push(b' ');
    nstring(out, p.description.as_deref());
    out.push(b' ');
    let enc = p.encoding.as_deref().unwrap_or("7BIT").to_ascii_uppercase();
    string(out, enc.as_bytes());
    let _ = write!(out, " {}", p.body.len());
    if let Some(m) = &p.message {
        out.push(b' ');
        envelope(out, &msg[m.header.clone()]);
        out.push(b' ');
        body(out, msg, m, ext);
        let _ = write!(out, " {}", p.lines);
    } else if p.mtype == "text" {
        let _ = write!(out, " {}", p.lines);
    }
    if ext {
        out.push(b' ');
        nstring(out, p.md5.as_deref());
        extension(out, p);
    }
    out.push(b')');
}

/// extension - disposition, language, location (shared by both kinds).
fn extension(out: &mut Vec<u8>, p: &Part) {
    out.push(b' ');
    match &p.disposition {
        Some((t, ps)) => {
            out.push(b'(');
            string(out, t.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match &p.language {
        Some(l) => {
            let langs: Vec<&str> = l
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            out.push(b'(');
            for (i, x) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, x.as_bytes());
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, p.location.as_deref());
}

/// header_fields - the fields of `header` named (or, with `not`, not
/// named) in `names`, raw with their folding, and the blank line.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    let mut i = 0;
    while i < header.len() {
        let end = mime::memfind(&header[i..], b"\r\n").map_or(header.len(), |j| i + j + 2);
        let line = &header[i..end];
        if line == b"\r\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.iter().position(|&c| c == b':').map(|c| {
                String::from_utf8_lossy(&line[..c])
                    .trim()
                    .to_ascii_uppercase()
            });
            keep = match name {
                Some(n) => names.contains(&n) != not,
                None => false,
            };
        }
        if keep {
            out.extend_from_slice(line);
        }
        i = end;
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// section_data - the octets BODY[section] names; empty when the part
/// does not exist (RFC 3501 allows that rather than an error).
pub fn section_data(msg: &[u8], root: &Part, s: &Section) -> Vec<u8> {
    let Some(part) = mime::resolve(root, &s.path) else {
        return Vec::new();
    };
    // HEADER, TEXT and HEADER.FIELDS of a part refer to its message.
    let message = if s.path.is_empty() {
        Some(root)
    } else {
        part.message.as_deref()
    };
    match &s.text {
        None if s.path.is_empty() => msg.to_vec(),
        None => msg[part.body.clone()].to_vec(),
        Some(SectionText::Mime) => msg[part.header.clone()].to_vec(),
        Some(SectionText::Header) => {
            message.map_or_else(Vec::new, |m| msg[m.header.clone()].to_vec())
        }
        Some(SectionText::Text) => message.map_or_else(Vec::new, |m| msg[m.body.clone()].to_vec()),
        Some(SectionText::Fields(n)) => message.map_or_else(Vec::new, |m| {
            header_fields(&msg[m.header.clone()], n, false)
        }),
        Some(SectionText::FieldsNot(n)) => {
            message.map_or_else(Vec::new, |m| header_fields(&msg[m.header.clone()], n, true))
        }
    }
}

/// section_name - how the response names a section: `BODY[1.HEADER.FIELDS (A B)]`.
pub fn section_name(s: &Section) -> String {
    let mut n = String::from("BODY[");
    let path: Vec<String> = s.path.iter().map(u32::to_string).collect();
    n.push_str(&path.join("."));
    let t = match &s.text {
        None => String::new(),
        Some(SectionText::Header) => "HEADER".into(),
        Some(SectionText::Text) => "TEXT".into(),
        Some(SectionText::Mime) => "MIME".into(),
        Some(SectionText::Fields(f)) => format!("HEADER.FIELDS ({})", quote_names(f)),
        Some(SectionText::FieldsNot(f)) => format!("HEADER.FIELDS.NOT ({})", quote_names(f)),
    };
    if !path.is_empty() && !t.is_empty() {
        n.push('.');
    }
    n.push_str(&t);
    n.push(']');
    n
}

/// quote_names - header names as the response echoes them.
fn quote_names(f: &[String]) -> String {
    f.iter()
        .map(|x| {
            let mut o = Vec::new();
            astring(&mut o, x);
            String::from_utf8_lossy(&o).into_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// internal_date - `"dd-Mon-yyyy hh:mm:ss +0000"` (in UTC).
pub fn internal_date(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} +0000\"",
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub use posthorn_mail::date::civil_from_days;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(s(|o| string(o, b"a\"b")), "\"a\\\"b\"");
        assert_eq!(s(|o| string(o, "ä".as_bytes())), "{2}\r\nä");
        assert_eq!(s(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(s(|o| astring(o, "Sent")), "Sent");
        assert_eq!(s(|o| astring(o, "a b")), "\"a b\"");
        assert_eq!(s(|o| astring(o, "NIL")), "\"NIL\"");
    }

    #[test]
    fn rfc3501_envelope_example() {
        let h = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev1 WG mtg summary and minutes\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, \"John Klensin\" <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\r\n";
        assert_eq!(
            s(|o| envelope(o, h)),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \
\"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn groups_and_oddities() {
        let a = addresses("undisclosed-recipients:;");
        assert_eq!(
            a,
            [
                (None, None, Some("undisclosed-recipients".into()), None),
                (None, None, None, None)
            ]
        );
        let a = addresses("A Group: x@y, \"Q, R\" <q@r>; (c) z@w");
        assert_eq!(a.len(), 5);
        assert_eq!(a[2].0.as_deref(), Some("Q, R"));
        assert_eq!(a[4].2.as_deref(), Some("z"));
    }

    #[test]
    fn bodystructure_of_nested() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nin\r\n--b--\r\n";
        let p = mime::parse(m);
        assert_eq!(
            s(|o| body(o, m, &p, false)),
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 2 1)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 16 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 2 1) 3) \"MIXED\")"
        );
        assert!(
            s(|o| body(o, m, &p, true)).ends_with(" \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)")
        );
    }

    #[test]
    fn sections() {
        let m = b"From: a\r\nTo: b\r\n  c\r\nSubject: x\r\n\r\nbody\r\n";
        let p = mime::parse(m);
        let sec = |path: Vec<u32>, text| Section { path, text };
        assert_eq!(
            section_data(
                m,
                &p,
                &sec(vec![], Some(SectionText::Fields(vec!["TO".into()])))
            ),
            b"To: b\r\n  c\r\n\r\n"
        );
        assert_eq!(
            section_data(
                m,
                &p,
                &sec(vec![], Some(SectionText::FieldsNot(vec!["TO".into()])))
            ),
            b"From: a\r\nSubject: x\r\n\r\n"
        );
        assert_eq!(section_data(m, &p, &sec(vec![1], None)), b"body\r\n");
        assert_eq!(section_data(m, &p, &sec(vec![], None)), m);
        assert_eq!(
            section_data(m, &p, &sec(vec![], Some(SectionText::Text))),
            b"body\r\n"
        );
        assert_eq!(section_data(m, &p, &sec(vec![2], None)), b"");
        assert_eq!(
            section_name(&sec(
                vec![1, 2],
                Some(SectionText::Fields(vec!["FROM".into(), "A B".into()]))
            )),
            "BODY[1.2.HEADER.FIELDS (FROM \"A B\")]"
        );
        assert_eq!(section_name(&sec(vec![], None)), "BODY[]");
    }

    #[test]
    fn dates() {
        assert_eq!(internal_date(760686745), "\"08-Feb-1994 05:52:25 +0000\"");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(crate::command::days_from_civil(2024, 2, 29), 19782);
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
    }
}
