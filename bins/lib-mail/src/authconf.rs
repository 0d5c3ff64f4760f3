//! authconf - the mail authentication keys of the configuration:
//! `[[dkim.key]]`, `[dmarc]` and `[spf]` (posthorn.toml(5)).

use std::path::PathBuf;
use std::time::Duration;

/// One signing key (`[[dkim.key]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// The signing domain (d=), lower case.
    pub domain: String,
    /// The selector (s=).
    pub selector: String,
    /// The PEM file of the private key.
    pub file: PathBuf,
    /// Relaxed (true) or simple header canonicalization.
    pub header_relaxed: bool,
    /// Relaxed (true) or simple body canonicalization.
    pub body_relaxed: bool,
    /// How long a signature is good for (x=); None for no x=.
    pub expire: Option<Duration>,
}

/// Mail authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAuth {
    /// `[[dkim.key]]`: signing keys, in order.
    pub dkim_keys: Vec<DkimKey>,
    /// `[dmarc] enforce`: reject p=reject, file p=quarantine as spam.
    pub dmarc_enforce: bool,
    /// `[spf] reject_fail`: refuse MAIL FROM when SPF says fail.
    pub spf_reject_fail: bool,
    /// `[smtpd] mail_auth`: SPF, DKIM and DMARC checks in MX mode.
    pub checks: bool,
}

impl Default for MailAuth {
    fn default() -> Self {
        MailAuth {
            dkim_keys: Vec::new(),
            dmarc_enforce: false,
            spf_reject_fail: false,
            checks: true,
        }
    }
}

/// Bad - a key's full name and what is wrong with it.
pub type Bad = (String, String);

fn bad(key: &str, what: &str) -> Bad {
    (key.to_string(), what.to_string())
}

/// parse_bool_table - `[name]` whose keys, all among `known`, are
/// booleans.
pub fn parse_bool_table(
    name: &str,
    v: &toml::Value,
    known: &[&str],
) -> Result<Vec<(String, bool)>, Bad> {
    let t = v
        .as_table()
        .ok_or_else(|| bad(name, &format!("must be a table [{name}]")))?;
    let mut out = Vec::new();
    for (k, v) in t {
        let full = format!("{name}.{k}");
        if !known.contains(&k.as_str()) {
            return Err(bad(&full, "unknown key"));
        }
        let on = v
            .as_bool()
            .ok_or_else(|| bad(&full, "must be true or false"))?;
        out.push((k.clone(), on));
    }
    Ok(out)
}

/// parse_dkim - `[dkim]` with its `[[dkim.key]]` tables; `rel` makes a
/// path relative to the config file's folder.
pub fn parse_dkim(v: &toml::Value, rel: &dyn Fn(&str) -> PathBuf) -> Result<Vec<DkimKey>, Bad> {
    let t = v
        .as_table()
        .ok_or_else(|| bad("dkim", "must be a table [dkim] with [[dkim.key]] tables"))?;
    let mut out = Vec::new();
    for (k, v) in t {
        if k != "key" {
            return Err(bad(&format!("dkim.{k}"), "unknown key"));
        }
        let arr = v
            .as_array()
            .ok_or_else(|| bad("dkim.key", "must be [[dkim.key]] tables"))?;
        for (n, item) in arr.iter().enumerate() {
            let tab = item
                .as_table()
                .ok_or_else(|| bad("dkim.key", "must be [[dkim.key]] tables"))?;
            let at = |f: &str| format!("dkim.key[{n}].{f}");
            let mut key = DkimKey {
                domain: String::new(),
                selector: String::new(),
                file: PathBuf::new(),
                header_relaxed: true,
                body_relaxed: true,
                expire: None,
            };
            for (f, fv) in tab {
                let s = fv.as_str();
                match f.as_str() {
                    "domain" | "selector" => {
                        let d = s
                            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                            .filter(|d| {
                                !d.is_empty()
                                    && d.len() <= 253
                                    && d.split('.').all(|l| {
                                        !l.is_empty()
                                            && l.len() <= 63
                                            && l.bytes().all(|b| {
                                                b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
                                            })
                                    })
                            })
                            .ok_or_else(|| bad(&at(f), "must be a domain name"))?;
                        if f == "domain" {
                            key.domain = d;
                        } else {
                            key.selector = d;
                        }
                    }
                    "file" => {
                        let p = s
                            .filter(|p| !p.is_empty() && !p.contains('\0'))
                            .ok_or_else(|| bad(&at(f), "must be a path"))?;
                        key.file = rel(p);
                    }
                    "canonicalization" => {
                        let c = s.unwrap_or("").to_ascii_lowercase();
                        let (h, b) = c.split_once('/').unwrap_or((&c, "simple"));
                        let one = |x: &str| match x {
                            "relaxed" => Some(true),
                            "simple" => Some(false),
                            _ => None,
                        };
                        match (one(h), one(b)) {
                            (Some(h), Some(b)) => {
                                key.header_relaxed = h;
                                key.body_relaxed = b;
                            }
                            _ => {
                                return Err(bad(
                                    &at(f),
                                    "must be \"relaxed/relaxed\", \"relaxed/simple\", \"simple/relaxed\" or \"simple/simple\"",
                                ));
                            }
                        }
                    }
                    "expire" => {
                        let d = crate::config::duration(fv)
                            .ok()
                            .filter(|d| !d.is_zero())
                            .ok_or_else(|| bad(&at(f), "must be a duration above 0"))?;
                        key.expire = Some(d);
                    }
                    _ => return Err(bad(&at(f), "unknown key")),
                }
            }
            for (f, missing) in [
                ("domain", key.domain.is_empty()),
                ("selector", key.selector.is_empty()),
                ("file", key.file.as_os_str().is_empty()),
            ] {
                if missing {
                    return Err(bad(&at(f), "is required"));
                }
            }
            out.push(key);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dkim_keys() {
        let t: toml::Table = "[[dkim.key]]\ndomain = \"Example.ORG\"\nselector = \"ed\"\nfile = \"k/ed.pem\"\n[[dkim.key]]\ndomain = \"example.org\"\nselector = \"rsa\"\nfile = \"/etc/rsa.pem\"\ncanonicalization = \"simple/simple\"\nexpire = \"7d\"\n".parse().unwrap();
        let rel = |p: &str| PathBuf::from("/cfg").join(p);
        let k = parse_dkim(&t["dkim"], &rel).unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].domain, "example.org");
        assert_eq!(k[0].file, PathBuf::from("/cfg/k/ed.pem"));
        assert!(k[0].header_relaxed && k[0].body_relaxed && k[0].expire.is_none());
        assert!(!k[1].header_relaxed && !k[1].body_relaxed);
        assert_eq!(k[1].expire, Some(Duration::from_secs(7 * 86400)));
        for bad in [
            "[[dkim.key]]\ndomain = \"a.b\"\nselector = \"s\"\n",
            "[[dkim.key]]\ndomain = \"a b\"\nselector = \"s\"\nfile = \"f\"\n",
            "[[dkim.key]]\ndomain = \"a.b\"\nselector = \"s\"\nfile = \"f\"\nalgorithm = \"x\"\n",
            "[dkim]\nsign = true\n",
        ] {
            let t: toml::Table = bad.parse().unwrap();
            assert!(parse_dkim(&t["dkim"], &rel).is_err(), "{bad}");
        }
    }
}
