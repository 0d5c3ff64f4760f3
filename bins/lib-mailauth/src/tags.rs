//! tags - the tag=value lists of DKIM signatures and key records (RFC
//! 6376 3.2) and of DMARC records (RFC 7489 6.4, the same syntax).
//!
//! ```text
//! tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
//! tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//! tag-name  = ALPHA *ALNUMPUNC          ; ALNUMPUNC = ALPHA / DIGIT / "_"
//! tag-value = [ tval *( 1*(WSP / FWS) tval ) ]
//! tval      = 1*VALCHAR                 ; VALCHAR = %x21-3A / %x3C-7E
//! ```
//!
//! A duplicate tag makes the whole list invalid (3.2). Octets above 0x7e
//! are let through in values (RFC 8616's UTF-8 local parts in i=).

/// Most tags in one list.
pub const MAX_TAGS: usize = 64;

/// parse - the tags of `text` in order, names as written, values with
/// the white space around them removed; Err says why the list is bad.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let specs: Vec<&str> = text.split(';').collect();
    for (n, spec) in specs.iter().enumerate() {
        if spec.trim_matches(is_fws).is_empty() {
            // Only the last spec may be empty (the optional final ";").
            if n + 1 == specs.len() {
                continue;
            }
            return Err("empty tag".into());
        }
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("no '=' in tag \"{}\"", spec.trim()))?;
        let name = name.trim_matches(is_fws);
        let mut nb = name.bytes();
        let ok_name = nb.next().is_some_and(|b| b.is_ascii_alphabetic())
            && nb.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok_name {
            return Err(format!("bad tag name \"{name}\""));
        }
        let value = value.trim_matches(is_fws);
        if value
            .bytes()
            .any(|b| b == 0 || (b < 0x20 && !is_fws_byte(b)) || b == 0x7f)
        {
            return Err(format!("bad characters in tag {name}"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate tag {name}"));
        }
        if out.len() >= MAX_TAGS {
            return Err("too many tags".into());
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

fn is_fws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_fws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// get - the value of tag `name`.
pub fn get<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// strip_ws - a value with all folding white space removed (b=, bh=, p=).
pub fn strip_ws(v: &str) -> String {
    v.chars().filter(|&c| !is_fws(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let t = parse(" v=1; a=rsa-sha256;\r\n\tb=ab cd\r\n ef; ").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(get(&t, "b"), Some("ab cd\r\n ef"));
        assert_eq!(strip_ws(get(&t, "b").unwrap()), "abcdef");
        assert!(parse("v=1; v=1").unwrap_err().contains("duplicate"));
        assert!(parse("v=1;; a=b").is_err());
        assert!(parse("1a=b").is_err());
        assert!(parse("v").is_err());
        assert_eq!(parse("p=").unwrap(), vec![("p".into(), String::new())]);
        assert!(parse("").unwrap().is_empty());
    }
}
