//! posthorn-mailauth - mail authentication without a runtime: DKIM
//! signing and verification (RFC 6376, RFC 8463, RFC 8301), SPF (RFC
//! 7208), DMARC (RFC 7489) and the Authentication-Results field (RFC
//! 8601), all synchronous, asking DNS through the `Dns` trait
//! (posthorn-dns in the programs, a table in tests and fuzzing).
//!
//! Distrusts everything it reads: message headers, signatures, DNS
//! records are strangers' text; every parser is bounded and total, and
//! every lookup counts against a limit (SPF's 10 and 2, DKIM's signatures
//! per message).

#![forbid(unsafe_code)]

pub mod ar;
pub mod canon;
pub mod dkim;
pub mod dmarc;
pub mod fuzzing;
pub mod header;
pub mod key;
pub mod spf;
pub mod tags;

pub use posthorn_dns::{Answer, Record, TempError};

/// Dns - the lookups the checks make; posthorn-dns's Resolver is one.
pub trait Dns {
    /// query - `qtype` records of `name`.
    fn query(&self, name: &str, qtype: u16) -> Result<Answer, TempError>;
}

impl Dns for posthorn_dns::Resolver {
    fn query(&self, name: &str, qtype: u16) -> Result<Answer, TempError> {
        posthorn_dns::Resolver::query(self, name, qtype)
    }
}

/// Txt - what a TXT lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txt {
    /// Each record's strings joined, as SPF, DKIM and DMARC read them.
    Found(Vec<Vec<u8>>),
    /// No such name.
    NxDomain,
    /// The name has no TXT records.
    NoData,
}

/// txt - the TXT records of `name`, each record's strings concatenated.
pub fn txt(dns: &dyn Dns, name: &str) -> Result<Txt, TempError> {
    Ok(match dns.query(name, posthorn_dns::TYPE_TXT)? {
        Answer::NxDomain => Txt::NxDomain,
        Answer::NoData => Txt::NoData,
        Answer::Records(r) => Txt::Found(
            r.into_iter()
                .filter_map(|r| match r {
                    Record::Txt(s) => Some(s.concat()),
                    _ => None,
                })
                .collect(),
        ),
    })
}

/// Zone - a DNS in a table, for tests and fuzzing: (name, type) ->
/// answer; a name with no entry is NXDOMAIN, a name with entries of other
/// types is NODATA.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    pub entries: Vec<(String, u16, Result<Vec<Record>, TempError>)>,
}

impl Zone {
    /// txt - add a TXT record of one string.
    pub fn txt(&mut self, name: &str, text: &str) -> &mut Zone {
        self.add(
            name,
            posthorn_dns::TYPE_TXT,
            Record::Txt(vec![text.as_bytes().to_vec()]),
        )
    }

    /// add - add a record.
    pub fn add(&mut self, name: &str, qtype: u16, r: Record) -> &mut Zone {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self
            .entries
            .iter_mut()
            .find(|(n, t, _)| *n == name && *t == qtype)
        {
            Some((_, _, Ok(v))) => v.push(r),
            _ => self.entries.push((name, qtype, Ok(vec![r]))),
        }
        self
    }

    /// fail - lookups of `name` and `qtype` fail for now.
    pub fn fail(&mut self, name: &str, qtype: u16) -> &mut Zone {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.entries
            .push((name, qtype, Err(TempError("SERVFAIL".into()))));
        self
    }
}

impl Dns for Zone {
    fn query(&self, name: &str, qtype: u16) -> Result<Answer, TempError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut known = false;
        for (n, t, r) in &self.entries {
            if *n == name {
                known = true;
                if *t == qtype {
                    return r.clone().map(Answer::Records);
                }
            }
        }
        Ok(if known {
            Answer::NoData
        } else {
            Answer::NxDomain
        })
    }
}

/// is_domain - a plausible DNS domain name: dot-separated labels of 1 to
/// 63 octets, letters, digits, '-' and '_', at most 253 octets in all.
pub fn is_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
