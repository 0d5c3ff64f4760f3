//! idn - a domain with non-ASCII labels as the A-labels DNS knows
//! (punycode, RFC 3492, with the "xn--" prefix of RFC 5890), so that
//! mail for an internationalized domain is looked up rather than taken
//! for a domain that does not exist.
//!
//! Distrusts its input only in size: labels are lowercased, not
//! normalized (NFC) or checked against IDNA2008's tables, which a full
//! IDNA library would do; a domain that does not map cleanly is not found
//! in DNS, and only NXDOMAIN from the resolver makes that permanent.

const BASE: u32 = 36;
const TMIN: u32 = 1;
const TMAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

/// adapt - the bias adaptation of RFC 3492 section 6.1.
fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
    delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - TMIN) * TMAX) / 2 {
        delta /= BASE - TMIN;
        k += BASE;
    }
    k + (((BASE - TMIN + 1) * delta) / (delta + SKEW))
}

fn digit(d: u32) -> char {
    // 0..25 are a..z, 26..35 are 0..9.
    char::from_u32(if d < 26 { d + 97 } else { d + 22 }).unwrap_or('?')
}

/// punycode - the RFC 3492 encoding of one label; None on overflow.
pub fn punycode(label: &str) -> Option<String> {
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut h) = (INITIAL_N, 0u32, INITIAL_BIAS, basic);
    while (h as usize) < input.len() {
        let m = *input.iter().filter(|&&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(h + 1)?)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, h + 1, h == basic);
                delta = 0;
                h += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

/// to_ascii - the domain with every non-ASCII label as an A-label.
pub fn to_ascii(domain: &str) -> Option<String> {
    if domain.is_ascii() {
        return Some(domain.to_string());
    }
    let labels: Option<Vec<String>> = domain
        .split('.')
        .map(|l| {
            if l.is_ascii() {
                Some(l.to_string())
            } else {
                punycode(&l.to_lowercase()).map(|p| format!("xn--{p}"))
            }
        })
        .collect();
    labels.map(|l| l.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        for (u, a) in [
            ("bücher.example", "xn--bcher-kva.example"),
            ("München.de", "xn--mnchen-3ya.de"),
            ("例え.jp", "xn--r8jz45g.jp"),
            ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
            ("plain.example", "plain.example"),
        ] {
            assert_eq!(to_ascii(u).as_deref(), Some(a), "{u}");
        }
    }
}
