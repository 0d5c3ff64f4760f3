//! mailauth - SPF, DKIM and DMARC for mail from strangers (MX mode), and
//! the one Authentication-Results field that reports them (RFC 8601).
//!
//! SPF runs at MAIL FROM, for the MAIL FROM and HELO identities, so that
//! `[spf] reject_fail` can refuse there; DKIM and DMARC run once the whole
//! message is in. Policy is off by default: with `[dmarc] enforce` a
//! DMARC fail under p=reject is refused at the end of DATA (550 5.7.1) and
//! under p=quarantine gets the `spam_header` line, which deliver(8) reads
//! to file it in Junk. Authentication-Results fields that arrive claiming
//! our host name are removed (RFC 8601 5).
//!
//! Every lookup goes through posthorn-dns with a deadline (20 s for SPF,
//! RFC 7208 4.6.4, and 20 s for the DKIM keys and DMARC records): a slow
//! or dead DNS gives temperror, never a stalled session or a rejection.

use posthorn_dns::Resolver;
use posthorn_mail::Config;
use posthorn_mailauth::ar::{self, Results};
use posthorn_mailauth::dmarc::{self, DmarcResult, Evidence, Policy};
use posthorn_mailauth::spf::{self, Spf, SpfResult};
use posthorn_mailauth::{dkim, header};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The time all the lookups of one step may take.
const STEP: Duration = Duration::from_secs(20);

/// The SPF results of a transaction.
#[derive(Debug, Clone)]
pub struct SpfPair {
    pub mailfrom: Spf,
    /// The identity checked for MAIL FROM (postmaster@HELO for <>).
    pub mailfrom_id: String,
    pub helo: Spf,
    pub helo_name: String,
}

impl SpfPair {
    /// domain - the domain SPF vouched for, as DMARC aligns it.
    pub fn domain(&self) -> &str {
        self.mailfrom_id
            .rsplit_once('@')
            .map_or(self.mailfrom_id.as_str(), |(_, d)| d)
    }
}

/// What to do with a message at the end of its data.
#[derive(Debug)]
pub enum Verdict {
    /// Queue it with these fields on top (Authentication-Results, maybe
    /// the spam_header) and this message in place of the client's.
    Accept { top: String, message: Vec<u8> },
    /// Refuse it with this reply text (after "550 ").
    Reject(String),
}

/// The checker of one session.
#[derive(Debug)]
pub struct Checker {
    dns: Resolver,
}

/// unix_now - seconds since the epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checker {
    /// new - the resolver of the `resolver` key or /etc/resolv.conf, read
    /// now, while the session starts.
    pub fn new(cfg: &Config) -> Checker {
        Checker {
            dns: Resolver::new(cfg.remote.resolver),
        }
    }

    /// spf - both identities' SPF results (one check when the sender is <>:
    /// its identity is HELO's).
    pub fn spf(&self, cfg: &Config, ip: IpAddr, sender: &str, helo: &str) -> SpfPair {
        let dns = self.dns.until(Instant::now() + STEP);
        let now = unix_now();
        let mailfrom_id = if sender.is_empty() {
            format!("postmaster@{helo}")
        } else {
            sender.to_string()
        };
        let mailfrom = spf::check_mailfrom(&dns, ip, sender, helo, &cfg.hostname, now);
        let helo_result = if sender.is_empty() {
            mailfrom.clone()
        } else {
            spf::check_helo(&dns, ip, helo, &cfg.hostname, now)
        };
        SpfPair {
            mailfrom,
            mailfrom_id,
            helo: helo_result,
            helo_name: helo.to_string(),
        }
    }

    /// message - DKIM and DMARC on the client's message, and the verdict.
    /// Also the summary for the log.
    pub fn message(&self, cfg: &Config, spf: &SpfPair, msg: &[u8]) -> (Verdict, String) {
        let dns = self.dns.until(Instant::now() + STEP);
        let dkim = dkim::verify(msg, &dns, unix_now());
        let (fields, _) = header::split(msg);
        let from: Vec<String> = fields
            .iter()
            .filter(|f| f.is("from"))
            .map(|f| header::from_domains(&f.text()).unwrap_or_default())
            .collect::<Vec<_>>()
            .concat();
        let from_fields = fields.iter().filter(|f| f.is("from")).count();
        let d = if from_fields != 1 {
            // RFC 7489 6.6.1: no From: or several of them is not judged.
            dmarc::Dmarc {
                result: DmarcResult::PermError,
                from_domain: String::new(),
                policy: None,
                disposition: Policy::None,
                reason: format!("{from_fields} From: fields"),
            }
        } else {
            let roll = (posthorn_sys::fsio::random_u64() % 100) as u8;
            dmarc::check(
                &dns,
                &Evidence {
                    from: &from,
                    spf: spf.mailfrom.result,
                    spf_domain: spf.domain(),
                    dkim: &dkim,
                    roll,
                },
            )
        };
        let summary = format!(
            "spf={} dkim={} dmarc={}{}",
            spf.mailfrom.result.name(),
            if dkim.is_empty() {
                "none".to_string()
            } else {
                dkim.iter()
                    .map(|o| if o.passed() { "pass" } else { "fail" })
                    .collect::<Vec<_>>()
                    .join(",")
            },
            d.result.name(),
            match d.policy {
                Some(p) if d.result == DmarcResult::Fail => {
                    format!(" policy={} disposition={}", p.name(), d.disposition.name())
                }
                _ => String::new(),
            }
        );
        let enforce = cfg.mailauth.dmarc_enforce && d.result == DmarcResult::Fail;
        if enforce && d.disposition == Policy::Reject {
            return (
                Verdict::Reject(format!(
                    "5.7.1 Email rejected per DMARC policy for {}",
                    d.from_domain
                )),
                summary,
            );
        }
        let results = Results {
            spf_mailfrom: Some((spf.mailfrom.clone(), spf.mailfrom_id.clone())),
            spf_helo: Some((spf.helo.clone(), spf.helo_name.clone())),
            dkim,
            dkim_checked: true,
            dmarc: Some(d.clone()),
        };
        let mut top = ar::field(&cfg.hostname, &results);
        if enforce && d.disposition == Policy::Quarantine {
            let (n, v) = &cfg.spam_header;
            top.push_str(&format!("{n}: {v}\n"));
        }
        (
            Verdict::Accept {
                top,
                message: strip_ours(msg, &cfg.hostname),
            },
            summary,
        )
    }
}

/// spf_refusal - the reply for a MAIL FROM that SPF fails, when
/// `[spf] reject_fail` is set (RFC 7372: 5.7.23).
pub fn spf_refusal(cfg: &Config, spf: &SpfPair) -> Option<String> {
    if !cfg.mailauth.spf_reject_fail || spf.mailfrom.result != SpfResult::Fail {
        return None;
    }
    let why = spf
        .mailfrom
        .explanation
        .clone()
        .unwrap_or_else(|| spf.mailfrom.reason.clone());
    let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
    Some(format!(
        "5.7.23 <{}>: Sender address rejected: SPF check failed: {why}",
        spf.mailfrom_id
    ))
}

/// strip_ours - the message without the Authentication-Results fields
/// that claim our host name (RFC 8601 5: they are forgeries).
pub fn strip_ours(msg: &[u8], hostname: &str) -> Vec<u8> {
    let (fields, body_at) = header::split(msg);
    let forged: Vec<&[u8]> = fields
        .iter()
        .filter(|f| f.is("authentication-results") && ar::is_ours(&f.text(), hostname))
        .map(|f| f.raw)
        .collect();
    if forged.is_empty() {
        return msg.to_vec();
    }
    let mut out = Vec::with_capacity(msg.len());
    for f in &fields {
        if !forged.iter().any(|x| std::ptr::eq(*x, f.raw)) {
            out.extend_from_slice(f.raw);
        }
    }
    // The rest (fields past MAX_FIELDS, the empty line, the body) as it came.
    let last = fields.last().map_or(0, |f| {
        f.raw.as_ptr() as usize - msg.as_ptr() as usize + f.raw.len()
    });
    out.extend_from_slice(&msg[last.min(body_at)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_are_removed() {
        let m = b"Authentication-Results: mail.test;\n\tdkim=pass header.d=bank.example\nAuthentication-Results: mx.other.example; spf=pass\nFrom: a@b.example\n\nbody\n";
        assert_eq!(
            strip_ours(m, "MAIL.TEST"),
            b"Authentication-Results: mx.other.example; spf=pass\nFrom: a@b.example\n\nbody\n"
        );
        let n = b"From: a@b.example\n\nAuthentication-Results: mail.test; x\n";
        assert_eq!(strip_ours(n, "mail.test"), n);
    }
}
