//! address - the small amount of RFC 5321 address handling the queue needs.

/// has_control - whether text holds CR, LF or NUL, which must never reach
/// an envelope, a header or a log line (header injection).
pub fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// strip_brackets - `<a@b>` -> `a@b`, and trims white space.
pub fn strip_brackets(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(t)
        .trim()
}

/// split - the local part and the domain of an address, at the last `@`
/// outside a quoted local part. `None` domain for a bare local name.
pub fn split(addr: &str) -> (&str, Option<&str>) {
    let mut in_quote = false;
    let mut escaped = false;
    let mut at = None;
    for (i, c) in addr.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quote = !in_quote,
            '@' if !in_quote => at = Some(i),
            _ => {}
        }
    }
    match at {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    }
}

/// split_detail - `user+detail` -> (`user`, Some(`detail`)).
pub fn split_detail(local: &str) -> (&str, Option<&str>) {
    match local.find('+') {
        Some(i) if i > 0 => (&local[..i], Some(&local[i + 1..])),
        _ => (local, None),
    }
}

/// is_plausible - a cheap sanity check for an envelope address: not empty,
/// bounded, no controls, no spaces outside quotes.
pub fn is_plausible(addr: &str) -> bool {
    if addr.is_empty() || addr.len() > 998 || has_control(addr) {
        return false;
    }
    let mut in_quote = false;
    for c in addr.chars() {
        if c == '"' {
            in_quote = !in_quote;
        } else if c.is_whitespace() && !in_quote {
            return false;
        }
    }
    !in_quote
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_known_answers() {
        let table: &[(&str, (&str, Option<&str>))] = &[
            ("a@b", ("a", Some("b"))),
            ("root", ("root", None)),
            ("\"x@y\"@z", ("\"x@y\"", Some("z"))),
            ("a@b@c", ("a@b", Some("c"))),
        ];
        for (input, want) in table {
            assert_eq!(split(input), *want, "{input}");
        }
        assert_eq!(split_detail("bob+lists"), ("bob", Some("lists")));
        assert_eq!(split_detail("+x"), ("+x", None));
        assert_eq!(strip_brackets(" <a@b> "), "a@b");
    }

    #[test]
    fn plausible() {
        assert!(is_plausible("a@b"));
        assert!(is_plausible("\"a b\"@c"));
        assert!(!is_plausible("a b@c"));
        assert!(!is_plausible("a@b\r\nRCPT"));
        assert!(!is_plausible(""));
    }
}
