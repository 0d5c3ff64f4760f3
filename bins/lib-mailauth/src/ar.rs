//! ar - the Authentication-Results header field (RFC 8601): the one we
//! add, and recognizing the ones that claim to be ours (section 5: a
//! field with our authserv-id that arrives with a message is a forgery,
//! removed before ours is added).

use crate::dkim::{Outcome, Verdict};
use crate::dmarc::Dmarc;
use crate::spf::Spf;

/// authserv_id - the authserv-id a field's value starts with: a token or
/// a quoted string, after white space and comments.
pub fn authserv_id(value: &str) -> Option<String> {
    let mut s = value.trim_start();
    while let Some(rest) = s.strip_prefix('(') {
        let mut depth = 1;
        let mut end = None;
        let mut esc = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if esc => esc = false,
                '\\' => esc = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        s = rest[end?..].trim_start();
    }
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut it = rest.chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => out.push(it.next()?),
                '"' => return Some(out),
                _ => out.push(c),
            }
        }
        return None;
    }
    let id: String = s
        .chars()
        .take_while(|c| !c.is_whitespace() && !";()\"".contains(*c))
        .collect();
    if id.is_empty() { None } else { Some(id) }
}

/// is_ours - whether an Authentication-Results value claims `hostname`.
pub fn is_ours(value: &str, hostname: &str) -> bool {
    authserv_id(value).is_some_and(|id| id.eq_ignore_ascii_case(hostname))
}

/// comment - text made safe inside ( ).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' | ')' | '\\' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(200)
        .collect()
}

/// pvalue - a property value: as it is when it is a token or an address
/// of token characters, else a quoted string.
fn pvalue(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@".contains(c) || !c.is_ascii()
        });
    if plain {
        v.to_string()
    } else {
        let mut q = String::from('"');
        for c in v.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
}

/// What one message's checks found.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// SPF for MAIL FROM and the identity checked.
    pub spf_mailfrom: Option<(Spf, String)>,
    /// SPF for HELO and the name.
    pub spf_helo: Option<(Spf, String)>,
    pub dkim: Vec<Outcome>,
    /// Whether DKIM was looked at (false: not reported).
    pub dkim_checked: bool,
    pub dmarc: Option<Dmarc>,
}

/// field - the whole header field, folded, ending in LF.
pub fn field(hostname: &str, r: &Results) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some((s, who)) = &r.spf_mailfrom {
        parts.push(format!(
            "spf={} ({}) smtp.mailfrom={}",
            s.result.name(),
            comment(&s.reason),
            pvalue(who)
        ));
    }
    if let Some((s, helo)) = &r.spf_helo {
        parts.push(format!(
            "spf={} ({}) smtp.helo={}",
            s.result.name(),
            comment(&s.reason),
            pvalue(helo)
        ));
    }
    if r.dkim_checked {
        if r.dkim.is_empty() {
            parts.push("dkim=none (no signatures)".into());
        }
        for o in &r.dkim {
            let (res, why) = match &o.verdict {
                Verdict::Pass => ("pass", String::new()),
                Verdict::Fail(w) => ("fail", w.clone()),
                Verdict::TempError(w) => ("temperror", w.clone()),
                Verdict::PermError(w) => ("permerror", w.clone()),
            };
            let mut notes = Vec::new();
            if !why.is_empty() {
                notes.push(why);
            }
            if o.testing {
                notes.push("key in test mode".into());
            }
            if o.length_limited {
                notes.push("body length limited by l=".into());
            }
            let mut p = format!("dkim={res}");
            if !notes.is_empty() {
                p.push_str(&format!(" ({})", comment(&notes.join("; "))));
            }
            for (k, v) in [
                ("header.d", &o.d),
                ("header.i", &o.i),
                ("header.s", &o.s),
                ("header.a", &o.a),
                ("header.b", &o.b_prefix),
            ] {
                if !v.is_empty() {
                    p.push_str(&format!(" {k}={}", pvalue(v)));
                }
            }
            parts.push(p);
        }
    }
    if let Some(d) = &r.dmarc {
        let mut p = format!("dmarc={}", d.result.name());
        match d.policy {
            Some(pol) => p.push_str(&format!(" (p={} dis={})", pol.name(), d.disposition.name())),
            None if !d.reason.is_empty() => p.push_str(&format!(" ({})", comment(&d.reason))),
            None => {}
        }
        if !d.from_domain.is_empty() {
            p.push_str(&format!(" header.from={}", pvalue(&d.from_domain)));
        }
        parts.push(p);
    }
    let mut out = format!("Authentication-Results: {}", pvalue(hostname));
    if parts.is_empty() {
        out.push_str("; none");
    }
    for p in parts {
        out.push_str(";\n\t");
        out.push_str(&p);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spf::SpfResult;

    #[test]
    fn authserv_ids() {
        assert_eq!(
            authserv_id(" mail.test; spf=pass").as_deref(),
            Some("mail.test")
        );
        assert_eq!(
            authserv_id("(c (n)) \"mail.test\" 1; none").as_deref(),
            Some("mail.test")
        );
        assert_eq!(
            authserv_id("mail.test 1 ; none").as_deref(),
            Some("mail.test")
        );
        assert!(is_ours("MAIL.test;\n\tdkim=pass", "mail.test"));
        assert!(!is_ours("mx.google.com; dkim=pass", "mail.test"));
        assert!(authserv_id("  ").is_none());
    }

    #[test]
    fn the_field() {
        let r = Results {
            spf_mailfrom: Some((
                Spf {
                    result: SpfResult::Pass,
                    explanation: None,
                    reason: "x (y)".into(),
                },
                "a b@example.test".into(),
            )),
            dkim_checked: true,
            ..Results::default()
        };
        let f = field("mail.test", &r);
        assert_eq!(
            f,
            "Authentication-Results: mail.test;\n\tspf=pass (x  y ) smtp.mailfrom=\"a b@example.test\";\n\tdkim=none (no signatures)\n"
        );
        assert!(is_ours(&f["Authentication-Results:".len()..], "mail.test"));
    }
}
