//! notify - the enotify mailto method (RFC 5435, RFC 5436): mailto URIs
//! (RFC 6068) checked and taken apart.

/// A parsed mailto URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailto {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Other header fields the URI sets (only those RFC 5436 §2.3 allows).
    pub headers: Vec<(String, String)>,
}

/// Header fields a URI may not set (RFC 5436 §2.3: the notification's
/// own fields and those that would route it).
const FORBIDDEN: &[&str] = &[
    "from",
    "sender",
    "auto-submitted",
    "received",
    "return-path",
    "message-id",
    "date",
    "bcc",
    "resent-from",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
];

/// Most recipients one notification may have (Pigeonhole's limit).
pub const MAX_RECIPIENTS: usize = 8;

/// percent_decode - `%XX` escapes, as UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in '{s}'"))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URI is not UTF-8".to_string())
}

/// parse - a `mailto:` URI; errors say what is wrong.
pub fn parse(uri: &str) -> Result<Mailto, String> {
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| format!("invalid notify method URI '{uri}'"))?;
    if !scheme.eq_ignore_ascii_case("mailto") {
        return Err(format!(
            "notify method '{scheme}' is not supported (only mailto)"
        ));
    }
    let mut m = Mailto::default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let add = |list: &mut Vec<String>, text: &str| -> Result<(), String> {
        for a in text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let a = crate::message::parse_single_address(a)
                .ok_or_else(|| format!("invalid recipient '{a}' in mailto URI"))?;
            if !list.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
                list.push(a);
            }
        }
        Ok(())
    };
    add(&mut m.to, &percent_decode(path)?)?;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?.to_ascii_lowercase();
        let v = percent_decode(v)?;
        match k.as_str() {
            "to" => add(&mut m.to, &v)?,
            "cc" => add(&mut m.cc, &v)?,
            "subject" => m.subject = Some(v),
            "body" => m.body = Some(v),
            _ if FORBIDDEN.contains(&k.as_str()) => {}
            _ if crate::message::is_field_name(&k) => m.headers.push((k, v)),
            _ => return Err(format!("invalid header '{k}' in mailto URI")),
        }
    }
    if m.to.is_empty() {
        return Err("mailto URI names no recipient".into());
    }
    if m.to.len() + m.cc.len() > MAX_RECIPIENTS {
        return Err(format!(
            "mailto URI names more than {MAX_RECIPIENTS} recipients"
        ));
    }
    Ok(m)
}

/// check_uri - whether `notify` can use this method URI.
pub fn check_uri(uri: &str) -> Result<(), String> {
    parse(uri).map(|_| ())
}

/// capability - notify_method_capability (RFC 5435 §5): "online" is
/// "maybe" for mail, which may or may not be read soon.
pub fn capability(uri: &str, cap: &str) -> Option<String> {
    check_uri(uri).ok()?;
    cap.eq_ignore_ascii_case("online")
        .then(|| "maybe".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_uris() {
        let m =
            parse("mailto:a@b.c,d@e.f?cc=g@h.i&subject=Hi%20there&body=x&from=evil@x.y&x-tag=1")
                .unwrap();
        assert_eq!(m.to, ["a@b.c", "d@e.f"]);
        assert_eq!(m.cc, ["g@h.i"]);
        assert_eq!(m.subject.as_deref(), Some("Hi there"));
        assert_eq!(m.headers, [("x-tag".to_string(), "1".to_string())]);
        for bad in [
            "xmpp:a@b",
            "mailto:",
            "mailto:nope",
            "mailto:a@b?%zz=1",
            "nocolon",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            capability("mailto:a@b.c", "online").as_deref(),
            Some("maybe")
        );
    }
}
