//! utf7 - modified UTF-7 mailbox names (RFC 3501 §5.1.3): `&`-shifted
//! base64 (with `,` for `/`) of UTF-16, `&-` for `&`.
//!
//! Distrusts the name: `decode` refuses every non-canonical spelling
//! (bytes outside 0x20-0x7e, an unterminated shift, bad padding bits, a
//! shifted run of plain ASCII, lone surrogates), so one mailbox has one name.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// decode - the UTF-8 form of a modified UTF-7 name; None when invalid.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return None;
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let end = i + 1 + b[i + 1..].iter().position(|&x| x == b'-')?;
        if end == i + 1 {
            out.push('&');
            i = end + 1;
            continue;
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut units: Vec<u16> = Vec::new();
        for &x in &b[i + 1..end] {
            let v = B64.iter().position(|&y| y == x)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        if nbits >= 6 || bits != 0 || units.is_empty() {
            return None;
        }
        let text = String::from_utf16(&units).ok()?;
        if text.chars().any(|ch| (0x20..=0x7e).contains(&(ch as u32))) {
            return None;
        }
        out.push_str(&text);
        i = end + 1;
    }
    Some(out)
}

/// encode - the modified UTF-7 form of a UTF-8 name.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        out.push('&');
        let mut bits: u32 = 0;
        let mut nbits = 0;
        for u in run.drain(..) {
            bits = (bits << 16) | u32::from(u);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(B64[((bits >> nbits) & 63) as usize] as char);
            }
            bits &= (1 << nbits) - 1;
        }
        if nbits > 0 {
            out.push(B64[((bits << (6 - nbits)) & 63) as usize] as char);
        }
        out.push('-');
    };
    for ch in s.chars() {
        if (0x20..=0x7e).contains(&(ch as u32)) {
            flush(&mut run, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // RFC 3501 §5.1.3's example, and others.
        let cases = [
            ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
            ("&-", "&"),
            ("Entw&APw-rfe", "Entwürfe"),
            ("&2D3eAA-", "😀"),
            ("plain", "plain"),
        ];
        for (u7, u8) in cases {
            assert_eq!(decode(u7).as_deref(), Some(u8), "{u7}");
            assert_eq!(encode(u8), u7);
        }
        for bad in ["&", "&U,BTF", "&AGE-", "ä", "&Jjo!-", "&2D0-", "&U,BTFx-"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
