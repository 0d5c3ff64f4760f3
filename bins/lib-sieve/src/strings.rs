//! strings - the string forms of the language: encoded-character
//! (RFC 5228 §2.4.2.4), variable references (RFC 5229 §3) and the `set`
//! modifiers (RFC 5229 §4.1, RFC 5435 :encodeurl, RFC 5230's regex
//! draft :quoteregex).

use crate::script::{Modifier, Part, Str};

/// decode_encoded - `${hex:..}` and `${unicode:..}` replaced by what they
/// stand for; a sequence that is not valid stays as written.
pub fn decode_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        if let Some(end) = after.find('}')
            && let Some(text) = decode_one(&after[..end])
        {
            out.push_str(&text);
            rest = &after[end + 1..];
            continue;
        }
        out.push_str("${");
        rest = after;
    }
    out.push_str(rest);
    out
}

/// decode_one - the inside of one `${...}`, if it is an encoding.
fn decode_one(inner: &str) -> Option<String> {
    let (kind, body) = inner.split_once(':')?;
    let kind = kind
        .trim_matches([' ', '\t', '\r', '\n'])
        .to_ascii_lowercase();
    let words = body
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty());
    match kind.as_str() {
        "hex" => {
            let mut bytes = Vec::new();
            for w in words {
                if w.len() % 2 != 0 {
                    return None;
                }
                for pair in w.as_bytes().chunks(2) {
                    let h = std::str::from_utf8(pair).ok()?;
                    bytes.push(u8::from_str_radix(h, 16).ok()?);
                }
            }
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        "unicode" => {
            let mut out = String::new();
            for w in words {
                if w.len() > 6 {
                    return None;
                }
                let cp = u32::from_str_radix(w, 16).ok()?;
                out.push(char::from_u32(cp)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// is_identifier - RFC 5228's identifier: a letter or `_`, then letters,
/// digits and `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// template - a string cut into literal parts and variable references;
/// a string without references stays a literal.
pub fn template(s: &str) -> Str {
    let mut parts: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}');
        let name = end.map(|e| &after[..e]);
        let part = match name {
            Some(n) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                n.parse::<u32>().ok().filter(|n| *n < 100).map(Part::Match)
            }
            Some(n) if is_identifier(n) && n.len() <= crate::MAX_VARIABLE_NAME => {
                Some(Part::Var(n.to_ascii_lowercase()))
            }
            _ => None,
        };
        match (part, end) {
            (Some(p), Some(e)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(p);
                rest = &after[e + 1..];
            }
            _ => {
                lit.push_str("${");
                rest = after;
            }
        }
    }
    lit.push_str(rest);
    if parts.is_empty() {
        return Str::Lit(lit);
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Str::Tpl(parts)
}

/// apply - the `set` modifiers, already in order of precedence.
pub fn apply(mods: &[Modifier], mut v: String) -> String {
    for m in mods {
        v = match m {
            Modifier::Lower => v.to_ascii_lowercase(),
            Modifier::Upper => v.to_ascii_uppercase(),
            Modifier::LowerFirst => first(&v, |c| c.to_ascii_lowercase()),
            Modifier::UpperFirst => first(&v, |c| c.to_ascii_uppercase()),
            Modifier::QuoteWildcard => escape(&v, "*?\\"),
            Modifier::QuoteRegex => escape(&v, "\\.+*?^$()[]{}|"),
            Modifier::EncodeUrl => encode_url(&v),
            Modifier::Length => v.chars().count().to_string(),
        };
    }
    v
}

fn first(v: &str, f: impl Fn(char) -> char) -> String {
    let mut c = v.chars();
    match c.next() {
        Some(x) => {
            let mut s = String::with_capacity(v.len());
            s.push(f(x));
            s.push_str(c.as_str());
            s
        }
        None => String::new(),
    }
}

fn escape(v: &str, special: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if special.contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// encode_url - percent-encoding of everything but RFC 3986's unreserved.
pub fn encode_url(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// truncate - cut a value to at most `max` bytes on a character boundary.
pub fn truncate(mut v: String, max: usize) -> String {
    if v.len() > max {
        let mut at = max;
        while !v.is_char_boundary(at) {
            at -= 1;
        }
        v.truncate(at);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_characters() {
        // RFC 5228 §2.4.2.4's examples.
        assert_eq!(decode_encoded("${hex:40}"), "@");
        assert_eq!(decode_encoded("${hex: 40 }"), "@");
        assert_eq!(decode_encoded("${HEX: 40}"), "@");
        assert_eq!(decode_encoded("${hex:40"), "${hex:40");
        assert_eq!(decode_encoded("${hex:400}"), "${hex:400}");
        assert_eq!(decode_encoded("${hex:4${hex:30}}"), "${hex:40}");
        assert_eq!(decode_encoded("${unicode:40}"), "@");
        assert_eq!(decode_encoded("${ unicode:40}"), "@");
        assert_eq!(decode_encoded("${UNICODE:40}"), "@");
        assert_eq!(decode_encoded("${UnICoDE:0000040}"), "${UnICoDE:0000040}");
        assert_eq!(decode_encoded("${Unicode:40}"), "@");
        assert_eq!(decode_encoded("${Unicode:Cool}"), "${Unicode:Cool}");
        assert_eq!(decode_encoded("${unicode:D800}"), "${unicode:D800}");
    }

    #[test]
    fn templates() {
        assert_eq!(template("plain"), Str::Lit("plain".into()));
        assert_eq!(
            template("a${Company}b${1}${}${-x}"),
            Str::Tpl(vec![
                Part::Lit("a".into()),
                Part::Var("company".into()),
                Part::Lit("b".into()),
                Part::Match(1),
                Part::Lit("${}${-x}".into()),
            ])
        );
    }

    #[test]
    fn modifiers() {
        // RFC 5229 §4.1's examples.
        assert_eq!(
            apply(&[Modifier::Upper], "juMBlEd lETteRS".into()),
            "JUMBLED LETTERS"
        );
        assert_eq!(apply(&[Modifier::Length], "juMBlEd lETteRS".into()), "15");
        assert_eq!(
            apply(
                &[Modifier::Lower, Modifier::UpperFirst],
                "juMBlEd lETteRS".into()
            ),
            "Jumbled letters"
        );
        assert_eq!(apply(&[Modifier::QuoteWildcard], "Rock*".into()), "Rock\\*");
        assert_eq!(
            apply(&[Modifier::UpperFirst, Modifier::Length], "".into()),
            "0"
        );
        assert_eq!(encode_url("a b&c"), "a%20b%26c");
    }
}
