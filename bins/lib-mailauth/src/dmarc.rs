//! dmarc - Domain-based Message Authentication, Reporting and
//! Conformance (RFC 7489): policy discovery at the From: domain and then
//! its organizational domain (the Public Suffix List, from the `psl`
//! crate), strict and relaxed alignment of SPF and DKIM, p=, sp=, pct=.
//! Reports (rua=, ruf=) are not sent.

use crate::dkim::Outcome;
use crate::spf::SpfResult;
use crate::{Dns, Txt, tags};

/// A requested handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// weaker - the next policy down (6.6.4: what pct= falls back to).
    fn weaker(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

/// A DMARC record (RFC 7489 6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub p: Policy,
    pub sp: Option<Policy>,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    pub pct: u8,
}

/// parse_record - a TXT record; Ok(None) when it is not a DMARC record
/// at all (no leading v=DMARC1), Err when it is one but broken.
pub fn parse_record(text: &str) -> Result<Option<Record>, String> {
    let t = match tags::parse(text) {
        Ok(t) => t,
        Err(e) => {
            return if text.trim_start().starts_with("v=DMARC1") {
                Err(e)
            } else {
                Ok(None)
            };
        }
    };
    match t.first() {
        Some((n, v)) if n == "v" && v == "DMARC1" => {}
        _ => return Ok(None),
    }
    let get = |n: &str| tags::get(&t, n);
    // 6.6.3: a missing or unknown p= is p=none when rua= is there (the
    // owner wants reports), else the record is broken.
    let p = match get("p").and_then(Policy::parse) {
        Some(p) => p,
        None if get("rua").is_some() => Policy::None,
        None => return Err("no valid p= tag".into()),
    };
    let strict = |n: &str| get(n).is_some_and(|v| v.eq_ignore_ascii_case("s"));
    Ok(Some(Record {
        p,
        sp: get("sp").and_then(Policy::parse),
        adkim_strict: strict("adkim"),
        aspf_strict: strict("aspf"),
        pct: get("pct")
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|n| *n <= 100)
            .unwrap_or(100),
    }))
}

/// The DMARC result (RFC 8601 2.7.1's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    None,
    Pass,
    Fail,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn name(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc {
    pub result: DmarcResult,
    /// The RFC5322.From domain.
    pub from_domain: String,
    /// The policy that applies (p= or sp=), when a record was found.
    pub policy: Option<Policy>,
    /// What to do: the policy for a fail after pct=, else none.
    pub disposition: Policy,
    pub reason: String,
}

/// org_domain - the organizational domain (RFC 7489 3.2): the registrable
/// domain under the Public Suffix List, or the name itself when it is a
/// public suffix.
pub fn org_domain(d: &str) -> String {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map_or(d.clone(), str::to_string)
}

/// aligned - identifiers aligned in strict (equal) or relaxed (same
/// organizational domain) mode.
pub fn aligned(a: &str, b: &str, strict: bool) -> bool {
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    if strict {
        a.eq_ignore_ascii_case(b)
    } else {
        org_domain(a) == org_domain(b)
    }
}

/// What the other checks found, as DMARC reads them.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The From: header's domains (all of them).
    pub from: &'a [String],
    pub spf: SpfResult,
    /// The domain SPF checked: MAIL FROM's, or HELO's for <>.
    pub spf_domain: &'a str,
    pub dkim: &'a [Outcome],
    /// A number from 0 to 99, drawn for pct=.
    pub roll: u8,
}

/// check - the DMARC verdict for a message.
pub fn check(dns: &dyn Dns, e: &Evidence) -> Dmarc {
    let mut out = Dmarc {
        result: DmarcResult::None,
        from_domain: String::new(),
        policy: None,
        disposition: Policy::None,
        reason: String::new(),
    };
    // 6.6.1: one author domain; several different ones are not judged.
    let Some(first) = e.from.first() else {
        out.result = DmarcResult::PermError;
        out.reason = "no From: domain".into();
        return out;
    };
    if e.from.iter().any(|d| !d.eq_ignore_ascii_case(first)) {
        out.result = DmarcResult::PermError;
        out.reason = "From: names more than one domain".into();
        return out;
    }
    let from = first.to_ascii_lowercase();
    out.from_domain = from.clone();
    if !crate::is_domain(&from) {
        out.result = DmarcResult::PermError;
        out.reason = "From: domain is not a domain".into();
        return out;
    }
    let org = org_domain(&from);
    let (rec, at_org) = match lookup(dns, &from) {
        Err(r) => {
            out.result = r.0;
            out.reason = r.1;
            return out;
        }
        Ok(Some(r)) => (r, false),
        Ok(None) if org != from => match lookup(dns, &org) {
            Err(r) => {
                out.result = r.0;
                out.reason = r.1;
                return out;
            }
            Ok(Some(r)) => (r, true),
            Ok(None) => {
                out.reason = "no DMARC record".into();
                return out;
            }
        },
        Ok(None) => {
            out.reason = "no DMARC record".into();
            return out;
        }
    };
    let policy = if at_org {
        rec.sp.unwrap_or(rec.p)
    } else {
        rec.p
    };
    out.policy = Some(policy);
    let dkim_ok = e
        .dkim
        .iter()
        .any(|o| o.passed() && aligned(&o.d, &from, rec.adkim_strict));
    let spf_ok = e.spf == SpfResult::Pass && aligned(e.spf_domain, &from, rec.aspf_strict);
    if dkim_ok || spf_ok {
        out.result = DmarcResult::Pass;
        out.reason = if dkim_ok {
            "DKIM aligned"
        } else {
            "SPF aligned"
        }
        .into();
        return out;
    }
    out.result = DmarcResult::Fail;
    out.reason = "neither SPF nor DKIM aligned".into();
    out.disposition = if e.roll < rec.pct {
        policy
    } else {
        policy.weaker()
    };
    out
}

/// lookup - the one DMARC record at _dmarc.`domain`.
fn lookup(dns: &dyn Dns, domain: &str) -> Result<Option<Record>, (DmarcResult, String)> {
    let name = format!("_dmarc.{domain}");
    let recs = match crate::txt(dns, &name) {
        Err(e) => return Err((DmarcResult::TempError, format!("DNS: {e}"))),
        Ok(Txt::NxDomain | Txt::NoData) => return Ok(None),
        Ok(Txt::Found(r)) => r,
    };
    let mut found = Vec::new();
    for r in recs {
        match parse_record(&String::from_utf8_lossy(&r)) {
            Ok(Some(rec)) => found.push(rec),
            Ok(None) => {}
            Err(e) => return Err((DmarcResult::PermError, format!("{name}: {e}"))),
        }
    }
    // 6.6.3: more than one record is as good as none.
    Ok(if found.len() == 1 { found.pop() } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Zone;
    use crate::dkim::Verdict;

    fn dkim(d: &str, pass: bool) -> Outcome {
        Outcome {
            verdict: if pass {
                Verdict::Pass
            } else {
                Verdict::Fail("x".into())
            },
            d: d.into(),
            s: "s".into(),
            i: String::new(),
            a: "ed25519-sha256".into(),
            b_prefix: String::new(),
            testing: false,
            length_limited: false,
        }
    }

    #[test]
    fn records() {
        let r = parse_record("v=DMARC1; p=reject; sp=none; adkim=s; pct=20")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.p, r.sp, r.adkim_strict, r.aspf_strict, r.pct),
            (Policy::Reject, Some(Policy::None), true, false, 20)
        );
        assert_eq!(parse_record("v=spf1 -all").unwrap(), None);
        assert_eq!(parse_record("p=reject; v=DMARC1").unwrap(), None);
        assert!(parse_record("v=DMARC1; p=bogus").is_err());
        assert_eq!(
            parse_record("v=DMARC1; rua=mailto:a@b.example")
                .unwrap()
                .unwrap()
                .p,
            Policy::None
        );
    }

    #[test]
    fn organizational_domains() {
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(org_domain("mail.example.com"), "example.com");
        assert_eq!(org_domain("x.example.test"), "example.test");
        assert_eq!(org_domain("co.uk"), "co.uk");
        assert!(aligned("mail.example.com", "example.com", false));
        assert!(!aligned("mail.example.com", "example.com", true));
        assert!(!aligned("example.co.uk", "other.co.uk", false));
    }

    #[test]
    fn verdicts() {
        let mut z = Zone::default();
        z.txt("_dmarc.example.test", "v=DMARC1; p=reject; sp=quarantine")
            .txt(
                "_dmarc.strict.test",
                "v=DMARC1; p=reject; aspf=s; adkim=s; pct=50",
            )
            .fail("_dmarc.down.test", posthorn_dns::TYPE_TXT);
        let from = |d: &str| vec![d.to_string()];
        let f = from("example.test");
        let e = Evidence {
            from: &f,
            spf: SpfResult::Pass,
            spf_domain: "bounce.example.test",
            dkim: &[],
            roll: 0,
        };
        assert_eq!(check(&z, &e).result, DmarcResult::Pass);
        let e = Evidence {
            spf: SpfResult::Fail,
            ..e
        };
        let d = check(&z, &e);
        assert_eq!(
            (d.result, d.disposition),
            (DmarcResult::Fail, Policy::Reject)
        );
        let good = [dkim("mail.example.test", true)];
        assert_eq!(
            check(
                &z,
                &Evidence {
                    dkim: &good,
                    ..e.clone()
                }
            )
            .result,
            DmarcResult::Pass
        );
        let bad = [dkim("example.test", false), dkim("other.test", true)];
        assert_eq!(
            check(
                &z,
                &Evidence {
                    dkim: &bad,
                    ..e.clone()
                }
            )
            .result,
            DmarcResult::Fail
        );
        // A subdomain without a record: the org domain's sp=.
        let sub = from("news.example.test");
        let d = check(
            &z,
            &Evidence {
                from: &sub,
                ..e.clone()
            },
        );
        assert_eq!(
            (d.policy, d.disposition),
            (Some(Policy::Quarantine), Policy::Quarantine)
        );
        // Strict alignment, and pct=50 with a roll above it: one step weaker.
        let s = from("strict.test");
        let e2 = Evidence {
            from: &s,
            spf: SpfResult::Pass,
            spf_domain: "mail.strict.test",
            dkim: &[],
            roll: 70,
        };
        let d = check(&z, &e2);
        assert_eq!(
            (d.result, d.disposition),
            (DmarcResult::Fail, Policy::Quarantine)
        );
        assert_eq!(
            check(
                &z,
                &Evidence {
                    roll: 10,
                    ..e2.clone()
                }
            )
            .disposition,
            Policy::Reject
        );
        let n = from("nothing.test");
        assert_eq!(
            check(
                &z,
                &Evidence {
                    from: &n,
                    ..e.clone()
                }
            )
            .result,
            DmarcResult::None
        );
        let t = from("down.test");
        assert_eq!(
            check(
                &z,
                &Evidence {
                    from: &t,
                    ..e.clone()
                }
            )
            .result,
            DmarcResult::TempError
        );
        let two = vec!["a.test".to_string(), "b.test".to_string()];
        assert_eq!(
            check(&z, &Evidence { from: &two, ..e }).result,
            DmarcResult::PermError
        );
    }
}
