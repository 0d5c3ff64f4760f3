//! matching - comparators (RFC 4790: i;octet, i;ascii-casemap,
//! i;ascii-numeric), match types (:is, :contains, :matches, :regex) and
//! the relational ones (RFC 5231), with the match variables of RFC 5229.
//!
//! :regex takes POSIX extended regular expressions, as the regex draft
//! and Pigeonhole (regcomp with REG_EXTENDED) do, and runs them on the
//! `regex` crate, which matches in linear time: a script cannot make a
//! delivery take exponential time. Where the two differ:
//! - the crate picks the leftmost-first alternative, POSIX the leftmost
//!   longest: whether a key matches is the same, but `${1}`... may hold
//!   a shorter alternative than Pigeonhole gives;
//! - back-references (`\1`, a GNU extension) are refused as an error;
//! - with i;ascii-casemap the match ignores case by Unicode's simple case
//!   folding, not only ASCII's;
//! - the crate's extras (`\d`, `\w`, `\b`, Unicode classes) are accepted.
//!
//! Bracket expressions are rewritten so that `\`, `[`, `&`, `~` and `-`
//! inside them mean what POSIX says (themselves).

use crate::script::{Comparator, MatchKind, Rel};
use std::cmp::Ordering;

/// Compiled regular expressions may use at most this much memory.
const REGEX_SIZE: usize = 1 << 20;
/// Largest table :matches may build to fill match variables.
const GLOB_CELLS: usize = 8 << 20;

/// compile_regex - a POSIX ERE for the `regex` crate, or why not.
pub fn compile_regex(pattern: &str, cmp: Comparator) -> Result<regex::Regex, String> {
    let rust = ere_to_rust(pattern)?;
    regex::RegexBuilder::new(&rust)
        .case_insensitive(cmp == Comparator::AsciiCasemap)
        .dot_matches_new_line(true)
        .size_limit(REGEX_SIZE)
        .dfa_size_limit(REGEX_SIZE)
        .nest_limit(64)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "too complex".to_string(),
            other => other
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string(),
        })
}

/// ere_to_rust - rewrite POSIX ERE syntax into the crate's.
fn ere_to_rust(p: &str) -> Result<String, String> {
    let c: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                let Some(&n) = c.get(i + 1) else {
                    return Err("trailing backslash".into());
                };
                match n {
                    '1'..='9' => return Err("back-references are not supported".into()),
                    'w' | 'W' | 's' | 'S' | 'd' | 'D' | 'b' | 'B' | '<' | '>' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '`' => out.push_str("\\A"),
                    '\'' => out.push_str("\\z"),
                    _ => out.push_str(&regex::escape(&n.to_string())),
                }
                i += 2;
            }
            '[' => {
                i = bracket(&c, i, &mut out)?;
            }
            '(' if c.get(i + 1) == Some(&'?') => return Err("'(?' is not POSIX".into()),
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// bracket - a bracket expression starting at `c[at]` (`[`); returns the
/// index after its `]`.
fn bracket(c: &[char], at: usize, out: &mut String) -> Result<usize, String> {
    let mut i = at + 1;
    out.push('[');
    if c.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&ch) = c.get(i) else {
            return Err("unmatched [".into());
        };
        if ch == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        if ch == '['
            && let Some(&k) = c.get(i + 1)
            && (k == ':' || k == '=' || k == '.')
        {
            let close: String = [k, ']'].iter().collect();
            let rest: String = c[i + 2..].iter().collect();
            let end = rest.find(&close).ok_or("unterminated [: :] in brackets")?;
            let name = &rest[..end];
            if k == ':' {
                out.push_str(&format!("[:{name}:]"));
            } else {
                for x in name.chars() {
                    out.push_str(&regex::escape(&x.to_string()));
                }
            }
            i += 2 + name.chars().count() + 2;
            continue;
        }
        match ch {
            '\\' | '[' | ']' | '&' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '-' => {
                // A range dash between two items stays; at the ends it is literal.
                let at_end = c.get(i + 1) == Some(&']');
                let at_start = out.ends_with('[') || out.ends_with("[^");
                if at_end || at_start {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
            }
            _ => out.push(ch),
        }
        i += 1;
    }
}

/// fold - a string as the comparator sees it for equality and ordering.
fn fold(cmp: Comparator, s: &str) -> std::borrow::Cow<'_, str> {
    if cmp == Comparator::AsciiCasemap && s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// numeric - i;ascii-numeric's value: the leading digits without leading
/// zeros; None (positive infinity) when the string starts with no digit.
fn numeric(s: &str) -> Option<&str> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let d = &s[..n];
    Some(d.trim_start_matches('0'))
}

/// order - how `a` compares with `b` under the comparator.
pub fn order(cmp: Comparator, a: &str, b: &str) -> Ordering {
    match cmp {
        Comparator::AsciiNumeric => match (numeric(a), numeric(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        },
        _ => fold(cmp, a).as_bytes().cmp(fold(cmp, b).as_bytes()),
    }
}

/// relation - whether `a REL b` holds.
pub fn relation(cmp: Comparator, rel: Rel, a: &str, b: &str) -> bool {
    let o = order(cmp, a, b);
    match rel {
        Rel::Gt => o == Ordering::Greater,
        Rel::Ge => o != Ordering::Less,
        Rel::Lt => o == Ordering::Less,
        Rel::Le => o != Ordering::Greater,
        Rel::Eq => o == Ordering::Equal,
        Rel::Ne => o != Ordering::Equal,
    }
}

/// Regular expressions compiled for keys that are expanded at run time.
#[derive(Debug, Default)]
pub struct RegexCache {
    map: std::collections::HashMap<(String, bool), Option<regex::Regex>>,
}

impl RegexCache {
    /// get - the compiled key, or None when it does not compile (the run
    /// treats that key as not matching, as Pigeonhole does).
    pub fn get(&mut self, key: &str, cmp: Comparator) -> Option<&regex::Regex> {
        let k = (key.to_string(), cmp == Comparator::AsciiCasemap);
        if self.map.len() > 1000 {
            self.map.clear();
        }
        self.map
            .entry(k)
            .or_insert_with(|| compile_regex(key, cmp).ok())
            .as_ref()
    }
}

/// matches - one value against one key under a match type other than
/// :count; `caps` receives the match variables when wanted.
pub fn matches(
    cmp: Comparator,
    kind: MatchKind,
    value: &str,
    key: &str,
    regexes: &mut RegexCache,
    caps: Option<&mut Vec<String>>,
) -> bool {
    match kind {
        MatchKind::Is => order(cmp, value, key) == Ordering::Equal,
        MatchKind::Contains => fold(cmp, value).contains(fold(cmp, key).as_ref()),
        MatchKind::Matches => glob(key, value, cmp == Comparator::AsciiCasemap, caps),
        MatchKind::Regex => match regexes.get(key, cmp) {
            Some(re) => match caps {
                None => re.is_match(value),
                Some(caps) => match re.captures(value) {
                    Some(c) => {
                        caps.clear();
                        for g in c.iter() {
                            caps.push(g.map_or(String::new(), |m| m.as_str().to_string()));
                        }
                        true
                    }
                    None => false,
                },
            },
            None => false,
        },
        MatchKind::Value(rel) => relation(cmp, rel, value, key),
        MatchKind::Count(_) => false,
    }
}

#[derive(Clone, Copy)]
enum G {
    Lit(char),
    One,
    Star,
}

/// glob - :matches (`*` any string, `?` one character, `\` quotes);
/// `caps` gets `${0}` and one string per wildcard, each `*` as long as
/// it can be (RFC 5229 §3.2: "the wildcards expand greedily").
pub fn glob(pattern: &str, text: &str, fold: bool, caps: Option<&mut Vec<String>>) -> bool {
    let mut p: Vec<G> = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        p.push(match c {
            '*' => G::Star,
            '?' => G::One,
            '\\' => G::Lit(it.next().unwrap_or('\\')),
            c => G::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (m, n) = (p.len(), t.len());
    let Some(caps) = caps.filter(|_| (m + 1).saturating_mul(n + 1) <= GLOB_CELLS) else {
        return glob_bool(&p, &t, &eq);
    };
    // can[i][j]: p[i..] matches t[j..].
    let w = n + 1;
    let mut can = vec![false; (m + 1) * w];
    can[m * w + n] = true;
    for i in (0..m).rev() {
        for j in (0..=n).rev() {
            can[i * w + j] = match p[i] {
                G::Lit(c) => j < n && eq(t[j], c) && can[(i + 1) * w + j + 1],
                G::One => j < n && can[(i + 1) * w + j + 1],
                G::Star => can[(i + 1) * w + j] || (j < n && can[i * w + j + 1]),
            };
        }
    }
    if !can[0] {
        return false;
    }
    caps.clear();
    caps.push(text.to_string());
    let mut j = 0;
    for (i, g) in p.iter().enumerate() {
        match g {
            G::Lit(_) => j += 1,
            G::One => {
                caps.push(t[j].to_string());
                j += 1;
            }
            G::Star => {
                let mut k = n;
                while !can[(i + 1) * w + k] {
                    k -= 1;
                }
                caps.push(t[j..k].iter().collect());
                j = k;
            }
        }
    }
    true
}

/// glob_bool - :matches without match variables, in constant memory.
fn glob_bool(p: &[G], t: &[char], eq: &dyn Fn(char, char) -> bool) -> bool {
    let (mut i, mut j) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while j < t.len() {
        match p.get(i) {
            Some(G::Star) => {
                back = Some((i, j));
                i += 1;
                continue;
            }
            Some(G::One) => {
                i += 1;
                j += 1;
                continue;
            }
            Some(G::Lit(c)) if eq(t[j], *c) => {
                i += 1;
                j += 1;
                continue;
            }
            _ => {}
        }
        match back {
            Some((bi, bj)) => {
                i = bi + 1;
                j = bj + 1;
                back = Some((bi, bj + 1));
            }
            None => return false,
        }
    }
    p[i..].iter().all(|g| matches!(g, G::Star))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let mut caps = Vec::new();
        // RFC 5229 §3.2's example.
        assert!(glob(
            "[*] *",
            "[acme-users] [fwd] version 1.0 is out",
            false,
            Some(&mut caps)
        ));
        assert_eq!(
            caps,
            [
                "[acme-users] [fwd] version 1.0 is out",
                "acme-users] [fwd",
                "version 1.0 is out"
            ]
        );
        assert!(glob("*<*@*", "Ann <ann@x.org>", false, Some(&mut caps)));
        assert_eq!(caps[1..], ["Ann ", "ann", "x.org>"]);
        assert!(glob("a?c", "abc", false, None));
        assert!(glob("A*", "abc", true, None));
        assert!(!glob("A*", "abc", false, None));
        assert!(glob("\\*x", "*x", false, None));
        assert!(!glob("\\*x", "ax", false, None));
        assert!(glob("*", "", false, None));
        assert!(!glob("?", "", false, None));
        assert!(glob("*a*b*c*", "xxaxxbxxcxx", false, None));
        assert!(glob("?ä?", "xäy", false, None));
        // Worst cases end quickly without variables.
        let long = "a".repeat(100_000);
        assert!(!glob(
            &"*a".repeat(50).replace("*a*a", "*a*b"),
            &long,
            false,
            None
        ));
    }

    #[test]
    fn comparators() {
        use Comparator::*;
        assert_eq!(order(AsciiNumeric, "10", "9"), Ordering::Greater);
        assert_eq!(order(AsciiNumeric, "007", "7x"), Ordering::Equal);
        assert_eq!(
            order(AsciiNumeric, "x", "99999999999999999999999"),
            Ordering::Greater
        );
        assert_eq!(order(AsciiNumeric, "x", "y"), Ordering::Equal);
        assert_eq!(order(AsciiCasemap, "ABC", "abc"), Ordering::Equal);
        assert_ne!(order(Octet, "ABC", "abc"), Ordering::Equal);
        assert!(relation(AsciiNumeric, Rel::Ge, "5", "5"));
        assert!(relation(Octet, Rel::Lt, "a", "b"));
    }

    #[test]
    fn posix_regexes() {
        let mut rc = RegexCache::default();
        let mut caps = Vec::new();
        let m = |k: &str, v: &str, rc: &mut RegexCache| {
            matches(Comparator::Octet, MatchKind::Regex, v, k, rc, None)
        };
        assert!(m("^[[:digit:]]+$", "123", &mut rc));
        assert!(m("[\\]x", "\\x", &mut rc));
        assert!(m("[]a]", "]", &mut rc));
        assert!(m("[a-]", "-", &mut rc));
        assert!(m("[&&]", "&", &mut rc));
        assert!(m("a.b", "a\nb", &mut rc));
        assert!(!m("^b", "a\nb", &mut rc));
        assert!(matches(
            Comparator::AsciiCasemap,
            MatchKind::Regex,
            "RE: x",
            "^re: (.*)$",
            &mut rc,
            Some(&mut caps)
        ));
        assert_eq!(caps, ["RE: x", "x"]);
        assert!(compile_regex("(a)\\1", Comparator::Octet).is_err());
        assert!(compile_regex("(", Comparator::Octet).is_err());
        assert_eq!(
            compile_regex("a{1000}{1000}", Comparator::Octet).unwrap_err(),
            "too complex"
        );
    }
}
