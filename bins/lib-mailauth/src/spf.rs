//! spf - the Sender Policy Framework (RFC 7208): check_host() for the
//! MAIL FROM and HELO identities, every mechanism (all, include, a, mx,
//! ptr, ip4, ip6, exists) and modifier (redirect, exp, others ignored),
//! macros with transformers, the seven results.
//!
//! Distrusts the records: a syntax error anywhere is permerror before
//! anything is evaluated; DNS-querying terms (include, a, mx, ptr,
//! exists, redirect) count to 10 and lookups that find nothing to 2
//! (4.6.4), an mx or ptr term looks at 10 names at most; a DNS failure is
//! temperror. The caller bounds the time (the resolver's deadline).

use crate::{Dns, Txt};
use posthorn_dns::{Answer, Record, TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_PTR};
use std::net::IpAddr;

/// DNS-querying terms per check (RFC 7208 4.6.4).
const MAX_LOOKUPS: u32 = 10;
/// Lookups that found nothing (NXDOMAIN or no records) per check.
const MAX_VOID: u32 = 2;
/// Names looked at per mx or ptr term.
const MAX_NAMES: usize = 10;
/// Longest macro expansion kept.
const MAX_EXPANSION: usize = 2048;

/// check_host()'s results (RFC 7208 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// name - the result's name in Authentication-Results and Received-SPF.
    pub fn name(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spf {
    pub result: SpfResult,
    /// For a fail: the domain's exp= text, expanded.
    pub explanation: Option<String>,
    /// Why, for logs and the A-R comment.
    pub reason: String,
}

/// What is being checked: the client, the identity and ourselves.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub ip: IpAddr,
    /// The full identity: local@domain (postmaster@helo for HELO or <>).
    pub sender: &'a str,
    pub helo: &'a str,
    /// Our host name, for %{r}.
    pub receiver: &'a str,
    /// Unix time, for %{t}.
    pub now: u64,
}

/// check_mailfrom - the MAIL FROM identity; a null sender is checked as
/// postmaster@HELO (RFC 7208 2.4).
pub fn check_mailfrom(
    dns: &dyn Dns,
    ip: IpAddr,
    sender: &str,
    helo: &str,
    receiver: &str,
    now: u64,
) -> Spf {
    let sender = if sender.is_empty() {
        format!("postmaster@{helo}")
    } else if !sender.contains('@') {
        format!("postmaster@{sender}")
    } else {
        sender.to_string()
    };
    let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let q = Query {
        ip,
        sender: &sender,
        helo,
        receiver,
        now,
    };
    check_host(dns, &q, domain)
}

/// check_helo - the HELO identity (RFC 7208 2.3); an address literal has
/// no policy.
pub fn check_helo(dns: &dyn Dns, ip: IpAddr, helo: &str, receiver: &str, now: u64) -> Spf {
    if helo.starts_with('[') || helo.parse::<IpAddr>().is_ok() {
        return Spf {
            result: SpfResult::None,
            explanation: None,
            reason: "HELO is an address literal".into(),
        };
    }
    let sender = format!("postmaster@{helo}");
    let q = Query {
        ip,
        sender: &sender,
        helo,
        receiver,
        now,
    };
    check_host(dns, &q, helo)
}

/// check_host - RFC 7208 4: the policy of `domain` for the query.
pub fn check_host(dns: &dyn Dns, q: &Query, domain: &str) -> Spf {
    let ip = match q.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(q.ip, IpAddr::V4),
        v4 => v4,
    };
    let q = Query { ip, ..q.clone() };
    let domain = domain.trim_end_matches('.');
    // 4.3: a malformed or single-label domain has no policy.
    if !crate::is_domain(domain) || !domain.contains('.') {
        return Spf {
            result: SpfResult::None,
            explanation: None,
            reason: format!("{domain} is not a domain with a policy"),
        };
    }
    let mut st = State {
        dns,
        q: &q,
        lookups: 0,
        void: 0,
    };
    match st.evaluate(domain, 0) {
        Ok((result, exp, why)) => Spf {
            result,
            explanation: if result == SpfResult::Fail {
                exp.and_then(|e| st.explain(&e, domain))
            } else {
                None
            },
            reason: why,
        },
        Err((result, why)) => Spf {
            result,
            explanation: None,
            reason: why,
        },
    }
}

/// A term of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Directive { qualifier: SpfResult, mech: Mech },
    Redirect(String),
    Exp(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mech {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(std::net::Ipv4Addr, u8),
    Ip6(std::net::Ipv6Addr, u8),
    Exists(String),
}

type Fatal = (SpfResult, String);

fn perm(why: impl Into<String>) -> Fatal {
    (SpfResult::PermError, why.into())
}

/// parse_record - the terms of a "v=spf1" record; any syntax error is
/// permerror (4.6).
fn parse_record(text: &str) -> Result<Vec<Term>, Fatal> {
    let rest = &text[6..];
    let mut terms = Vec::new();
    let (mut redirect, mut exp) = (false, false);
    for t in rest.split(' ').filter(|t| !t.is_empty()) {
        let lower = t.to_ascii_lowercase();
        // A modifier: name "=" macro-string.
        if let Some((name, value)) = t.split_once('=')
            && !name.contains(':')
            && !name.contains('/')
        {
            let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(perm(format!("bad modifier {t}")));
            }
            check_macro(value, false).map_err(perm)?;
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if redirect {
                        return Err(perm("two redirect= modifiers"));
                    }
                    redirect = true;
                    check_domain_spec(value)?;
                    terms.push(Term::Redirect(value.to_string()));
                }
                "exp" => {
                    if exp {
                        return Err(perm("two exp= modifiers"));
                    }
                    exp = true;
                    check_domain_spec(value)?;
                    terms.push(Term::Exp(value.to_string()));
                }
                _ => {}
            }
            continue;
        }
        let (qualifier, body) = match lower.as_bytes().first() {
            Some(b'+') => (SpfResult::Pass, &t[1..]),
            Some(b'-') => (SpfResult::Fail, &t[1..]),
            Some(b'~') => (SpfResult::SoftFail, &t[1..]),
            Some(b'?') => (SpfResult::Neutral, &t[1..]),
            _ => (SpfResult::Pass, t),
        };
        let (name, arg) = match body.find([':', '/']) {
            Some(i) => (&body[..i], Some(&body[i..])),
            None => (body, None),
        };
        let spec = |arg: Option<&str>, required: bool| -> Result<Option<String>, Fatal> {
            match arg {
                Some(a) if a.starts_with(':') => {
                    let d = &a[1..];
                    check_domain_spec(d)?;
                    Ok(Some(d.to_string()))
                }
                Some(_) if required => Err(perm(format!("{body} needs a domain"))),
                None if required => Err(perm(format!("{body} needs a domain"))),
                _ => Ok(None),
            }
        };
        let mech = match name.to_ascii_lowercase().as_str() {
            "all" if arg.is_none() => Mech::All,
            "include" => Mech::Include(spec(arg, true)?.unwrap_or_default()),
            "exists" => Mech::Exists(spec(arg, true)?.unwrap_or_default()),
            "ptr" if arg.is_none_or(|a| a.starts_with(':')) => Mech::Ptr(spec(arg, false)?),
            "a" | "mx" => {
                let (d, c4, c6) = split_cidr(arg.unwrap_or(""))?;
                let d = if d.is_empty() {
                    None
                } else {
                    spec(Some(d), false)?
                };
                if name.eq_ignore_ascii_case("a") {
                    Mech::A(d, c4, c6)
                } else {
                    Mech::Mx(d, c4, c6)
                }
            }
            "ip4" => {
                let (addr, len) = network(arg, 32, "ip4")?;
                Mech::Ip4(addr, len)
            }
            "ip6" => {
                let (addr, len) = network(arg, 128, "ip6")?;
                Mech::Ip6(addr, len)
            }
            _ => return Err(perm(format!("unknown mechanism {t}"))),
        };
        terms.push(Term::Directive { qualifier, mech });
    }
    Ok(terms)
}

/// network - ":address[/length]" of an ip4 or ip6 mechanism.
fn network<A: std::str::FromStr>(arg: Option<&str>, max: u8, what: &str) -> Result<(A, u8), Fatal> {
    let a = arg
        .and_then(|a| a.strip_prefix(':'))
        .ok_or_else(|| perm(format!("{what} needs an address")))?;
    let (addr, len) = match a.split_once('/') {
        Some((x, l)) => (x, cidr(l, max)?),
        None => (a, max),
    };
    let addr = addr
        .parse()
        .map_err(|_| perm(format!("bad {what} address {addr}")))?;
    Ok((addr, len))
}

/// cidr - a prefix length of at most `max`, no leading zeros.
fn cidr(s: &str, max: u8) -> Result<u8, Fatal> {
    let ok = !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    s.parse::<u8>()
        .ok()
        .filter(|n| ok && *n <= max)
        .ok_or_else(|| perm(format!("bad prefix length /{s}")))
}

/// split_cidr - ":domain/24//64" into its parts (each optional).
fn split_cidr(arg: &str) -> Result<(&str, u8, u8), Fatal> {
    let (spec, c6) = match arg.find("//") {
        Some(i) => (&arg[..i], cidr(&arg[i + 2..], 128)?),
        None => (arg, 128),
    };
    let (spec, c4) = match spec.rfind('/') {
        Some(i) => (&spec[..i], cidr(&spec[i + 1..], 32)?),
        None => (spec, 32),
    };
    Ok((spec, c4, c6))
}

/// check_domain_spec - macro-string domain-end (RFC 7208 7.1): a macro
/// string whose literal end is a domain with a top label that is not
/// all digits, or ends in a macro.
fn check_domain_spec(d: &str) -> Result<(), Fatal> {
    check_macro(d, false).map_err(perm)?;
    if d.ends_with('}') {
        return Ok(());
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    let top = d.rsplit('.').next().unwrap_or("");
    let good = d.contains('.')
        && !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.bytes().all(|b| b.is_ascii_digit())
        && !top.starts_with('-')
        && !top.ends_with('-');
    if good {
        Ok(())
    } else {
        Err(perm(format!("bad domain {d}")))
    }
}

/// check_macro - the syntax of a macro-string; c, r and t only in exp.
fn check_macro(s: &str, exp: bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let end = s[i..].find('}').ok_or("unterminated macro")? + i;
                    parse_macro(&s[i + 2..end], exp)?;
                    i = end + 1;
                }
                _ => return Err(format!("bad macro in {s}")),
            },
            0x21..=0x7e => i += 1,
            b' ' if exp => i += 1,
            _ => return Err(format!("bad character in {s}")),
        }
    }
    Ok(())
}

/// A macro's letter, digits, reversal and delimiters.
struct Macro {
    letter: char,
    digits: Option<usize>,
    reverse: bool,
    delims: String,
}

fn parse_macro(m: &str, exp: bool) -> Result<Macro, String> {
    let mut ch = m.chars();
    let letter = ch.next().ok_or("empty macro")?;
    let lower = letter.to_ascii_lowercase();
    if !("slodiphv".contains(lower) || exp && "crt".contains(lower)) {
        return Err(format!("unknown macro letter {letter}"));
    }
    let rest: String = ch.collect();
    let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = if digits_len > 0 {
        let n: usize = rest[..digits_len].parse().map_err(|_| "bad macro digits")?;
        if n == 0 {
            return Err("macro digits of 0".into());
        }
        Some(n.min(128))
    } else {
        None
    };
    let mut rest = &rest[digits_len..];
    let reverse = rest.starts_with(['r', 'R']);
    if reverse {
        rest = &rest[1..];
    }
    if !rest.chars().all(|c| ".-+,/_=".contains(c)) {
        return Err(format!("bad macro delimiters {rest}"));
    }
    Ok(Macro {
        letter,
        digits,
        reverse,
        delims: rest.to_string(),
    })
}

/// The state of one check_host() and the checks it recurses into.
struct State<'a> {
    dns: &'a dyn Dns,
    q: &'a Query<'a>,
    lookups: u32,
    void: u32,
}

/// Most include/redirect nesting (the lookup limit ends loops sooner).
const MAX_DEPTH: u32 = 12;

impl State<'_> {
    /// count - one more DNS-querying term.
    fn count(&mut self) -> Result<(), Fatal> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(perm("more than 10 DNS lookups"));
        }
        Ok(())
    }

    /// query - a lookup whose empty answer counts as void.
    fn query(&mut self, name: &str, t: u16) -> Result<Vec<Record>, Fatal> {
        match self.dns.query(name, t) {
            Ok(Answer::Records(r)) => Ok(r),
            Ok(Answer::NoData | Answer::NxDomain) => {
                self.void += 1;
                if self.void > MAX_VOID {
                    return Err(perm("more than 2 void DNS lookups"));
                }
                Ok(Vec::new())
            }
            Err(e) => Err((SpfResult::TempError, format!("DNS: {e}"))),
        }
    }

    /// record - the one SPF record of `domain`: None when there is none.
    fn record(&mut self, domain: &str) -> Result<Option<String>, Fatal> {
        let recs = match crate::txt(self.dns, domain) {
            Err(e) => return Err((SpfResult::TempError, format!("DNS: {e}"))),
            Ok(Txt::NxDomain | Txt::NoData) => return Ok(None),
            Ok(Txt::Found(r)) => r,
        };
        let spf: Vec<String> = recs
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .filter(|r| {
                r.len() >= 6
                    && r.as_bytes()[..6].eq_ignore_ascii_case(b"v=spf1")
                    && (r.len() == 6 || r.as_bytes()[6] == b' ')
            })
            .collect();
        match spf.len() {
            0 => Ok(None),
            1 => Ok(spf.into_iter().next()),
            _ => Err(perm(format!("{domain} has more than one SPF record"))),
        }
    }

    /// evaluate - check_host() for `domain`: the result, the exp= to use
    /// on a fail, and why.
    fn evaluate(
        &mut self,
        domain: &str,
        depth: u32,
    ) -> Result<(SpfResult, Option<String>, String), Fatal> {
        if depth > MAX_DEPTH {
            return Err(perm("includes nested too deep"));
        }
        let Some(text) = self.record(domain)? else {
            return Ok((SpfResult::None, None, format!("no SPF record at {domain}")));
        };
        let terms = parse_record(&text)?;
        let exp = terms.iter().find_map(|t| match t {
            Term::Exp(e) => Some(e.clone()),
            _ => None,
        });
        for t in &terms {
            let Term::Directive { qualifier, mech } = t else {
                continue;
            };
            if self.matches(mech, domain, depth)? {
                let ip = self.q.ip;
                return Ok((
                    *qualifier,
                    exp,
                    format!("{domain}: {ip} matched {}", describe(mech)),
                ));
            }
        }
        if let Some(Term::Redirect(r)) = terms.iter().find(|t| matches!(t, Term::Redirect(_))) {
            self.count()?;
            let target = self.expand_domain(r, domain)?;
            let (res, exp, why) = self.evaluate(&target, depth + 1)?;
            if res == SpfResult::None {
                return Err(perm(format!(
                    "redirect to {target}, which has no SPF record"
                )));
            }
            return Ok((res, exp, why));
        }
        Ok((
            SpfResult::Neutral,
            exp,
            format!("{domain}: no mechanism matched"),
        ))
    }

    /// matches - whether one mechanism matches the client.
    fn matches(&mut self, m: &Mech, domain: &str, depth: u32) -> Result<bool, Fatal> {
        let ip = self.q.ip;
        match m {
            Mech::All => Ok(true),
            Mech::Ip4(net, len) => Ok(match ip {
                IpAddr::V4(a) => in_net(IpAddr::V4(a), IpAddr::V4(*net), *len),
                IpAddr::V6(_) => false,
            }),
            Mech::Ip6(net, len) => Ok(match ip {
                IpAddr::V6(a) => in_net(IpAddr::V6(a), IpAddr::V6(*net), *len),
                IpAddr::V4(_) => false,
            }),
            Mech::Include(spec) => {
                self.count()?;
                let target = self.expand_domain(spec, domain)?;
                match self.evaluate(&target, depth + 1) {
                    Ok((SpfResult::Pass, _, _)) => Ok(true),
                    Ok((SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral, _, _)) => {
                        Ok(false)
                    }
                    Ok((SpfResult::None, _, _)) => {
                        Err(perm(format!("include:{target} has no SPF record")))
                    }
                    Ok((r, _, why)) => Err((r, why)),
                    Err((SpfResult::TempError, why)) => Err((SpfResult::TempError, why)),
                    Err((_, why)) => Err(perm(why)),
                }
            }
            Mech::A(spec, c4, c6) => {
                self.count()?;
                let target = self.target(spec, domain)?;
                self.any_address(&target, *c4, *c6)
            }
            Mech::Mx(spec, c4, c6) => {
                self.count()?;
                let target = self.target(spec, domain)?;
                let mx = self.query(&target, TYPE_MX)?;
                if mx.len() > MAX_NAMES {
                    return Err(perm(format!("{target} has more than 10 MX records")));
                }
                for r in mx {
                    if let Record::Mx { exchange, .. } = r
                        && !exchange.is_empty()
                        && self.any_address_quiet(&exchange, *c4, *c6)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mech::Ptr(spec) => {
                self.count()?;
                let target = self.target(spec, domain)?;
                Ok(self
                    .validated_names()
                    .iter()
                    .any(|n| name_within(n, &target)))
            }
            Mech::Exists(spec) => {
                self.count()?;
                let target = self.expand_domain(spec, domain)?;
                Ok(!self.query(&target, TYPE_A)?.is_empty())
            }
        }
    }

    /// target - the mechanism's domain, or the current one.
    fn target(&mut self, spec: &Option<String>, domain: &str) -> Result<String, Fatal> {
        match spec {
            Some(s) => self.expand_domain(s, domain),
            None => Ok(domain.to_string()),
        }
    }

    /// any_address - an A or AAAA lookup (as the client's family) whose
    /// empty answer is void.
    fn any_address(&mut self, name: &str, c4: u8, c6: u8) -> Result<bool, Fatal> {
        let (t, len) = match self.q.ip {
            IpAddr::V4(_) => (TYPE_A, c4),
            IpAddr::V6(_) => (TYPE_AAAA, c6),
        };
        let ip = self.q.ip;
        Ok(self
            .query(name, t)?
            .iter()
            .any(|r| matches!(r, Record::Addr(a) if in_net(ip, *a, len))))
    }

    /// any_address_quiet - the same for an MX host: an empty answer is not
    /// counted as void (the mx term's own lookup was).
    fn any_address_quiet(&mut self, name: &str, c4: u8, c6: u8) -> Result<bool, Fatal> {
        let (t, len) = match self.q.ip {
            IpAddr::V4(_) => (TYPE_A, c4),
            IpAddr::V6(_) => (TYPE_AAAA, c6),
        };
        let ip = self.q.ip;
        match self.dns.query(name, t) {
            Ok(Answer::Records(r)) => Ok(r
                .iter()
                .any(|r| matches!(r, Record::Addr(a) if in_net(ip, *a, len)))),
            Ok(_) => Ok(false),
            Err(e) => Err((SpfResult::TempError, format!("DNS: {e}"))),
        }
    }

    /// validated_names - the client's PTR names whose own addresses
    /// include it (5.5); lookup failures just drop names.
    fn validated_names(&mut self) -> Vec<String> {
        let ip = self.q.ip;
        let names = match self.dns.query(&reverse_name(ip), TYPE_PTR) {
            Ok(Answer::Records(r)) => r,
            _ => return Vec::new(),
        };
        let t = if ip.is_ipv4() { TYPE_A } else { TYPE_AAAA };
        let mut out = Vec::new();
        for r in names.into_iter().take(MAX_NAMES) {
            let Record::Ptr(name) = r else { continue };
            if let Ok(Answer::Records(a)) = self.dns.query(&name, t)
                && a.contains(&Record::Addr(ip))
            {
                out.push(name);
            }
        }
        out
    }

    /// expand_domain - a domain-spec expanded, cut to 253 octets from the
    /// left (7.3), and checked.
    fn expand_domain(&mut self, spec: &str, domain: &str) -> Result<String, Fatal> {
        let mut d = self.expand(spec, domain, false)?;
        d = d.trim_end_matches('.').to_string();
        while d.len() > 253 {
            match d.split_once('.') {
                Some((_, rest)) => d = rest.to_string(),
                None => break,
            }
        }
        if d.is_empty() || d.len() > 253 || d.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(perm(format!("{spec} expands to no domain")));
        }
        Ok(d)
    }

    /// expand - a macro-string (RFC 7208 7).
    fn expand(&mut self, s: &str, domain: &str, exp: bool) -> Result<String, Fatal> {
        check_macro(s, exp).map_err(perm)?;
        let mut out = String::new();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            if let Some(r) = rest.strip_prefix('%') {
                match r.as_bytes().first() {
                    Some(b'%') => {
                        out.push('%');
                        i += 2;
                    }
                    Some(b'_') => {
                        out.push(' ');
                        i += 2;
                    }
                    Some(b'-') => {
                        out.push_str("%20");
                        i += 2;
                    }
                    _ => {
                        let end = rest.find('}').ok_or_else(|| perm("unterminated macro"))?;
                        let m = parse_macro(&rest[2..end], exp).map_err(perm)?;
                        out.push_str(&self.macro_value(&m, domain));
                        i += end + 1;
                    }
                }
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
            if out.len() > MAX_EXPANSION {
                return Err(perm("macro expansion too long"));
            }
        }
        Ok(out)
    }

    /// macro_value - one macro's value, transformed.
    fn macro_value(&mut self, m: &Macro, domain: &str) -> String {
        let q = self.q;
        let (local, sdomain) = q
            .sender
            .rsplit_once('@')
            .unwrap_or(("postmaster", q.sender));
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        let raw = match m.letter.to_ascii_lowercase() {
            's' => q.sender.to_string(),
            'l' => local.to_string(),
            'o' => sdomain.to_string(),
            'd' => domain.to_string(),
            'i' => match q.ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => nibbles(a).join("."),
            },
            'p' => {
                let names = self.validated_names();
                names
                    .iter()
                    .find(|n| name_within(n, domain))
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            }
            'v' => if q.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
            'h' => q.helo.to_string(),
            'c' => q.ip.to_string(),
            'r' => q.receiver.to_string(),
            't' => q.now.to_string(),
            _ => String::new(),
        };
        let delims = if m.delims.is_empty() { "." } else { &m.delims };
        let mut parts: Vec<&str> = raw.split(|c| delims.contains(c)).collect();
        if m.reverse {
            parts.reverse();
        }
        if let Some(n) = m.digits
            && n < parts.len()
        {
            parts = parts.split_off(parts.len() - n);
        }
        let v = parts.join(".");
        if m.letter.is_ascii_uppercase() {
            url_escape(&v)
        } else {
            v
        }
    }

    /// explain - the exp= text for a fail (6.2); any problem means none.
    fn explain(&mut self, spec: &str, domain: &str) -> Option<String> {
        let target = self.expand_domain(spec, domain).ok()?;
        let Ok(Txt::Found(recs)) = crate::txt(self.dns, &target) else {
            return None;
        };
        if recs.len() != 1 {
            return None;
        }
        let text = String::from_utf8(recs[0].clone()).ok()?;
        let e = self.expand(&text, domain, true).ok()?;
        Some(e.chars().filter(|c| !c.is_control()).collect())
    }
}

/// describe - a mechanism as written, for the reason.
fn describe(m: &Mech) -> String {
    match m {
        Mech::All => "all".into(),
        Mech::Include(d) => format!("include:{d}"),
        Mech::A(d, _, _) => format!(
            "a{}",
            d.as_ref().map(|d| format!(":{d}")).unwrap_or_default()
        ),
        Mech::Mx(d, _, _) => format!(
            "mx{}",
            d.as_ref().map(|d| format!(":{d}")).unwrap_or_default()
        ),
        Mech::Ptr(d) => format!(
            "ptr{}",
            d.as_ref().map(|d| format!(":{d}")).unwrap_or_default()
        ),
        Mech::Ip4(a, l) => format!("ip4:{a}/{l}"),
        Mech::Ip6(a, l) => format!("ip6:{a}/{l}"),
        Mech::Exists(d) => format!("exists:{d}"),
    }
}

/// in_net - whether `ip` is in `net`/`len` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// name_within - `name` is `domain` or below it.
fn name_within(name: &str, domain: &str) -> bool {
    let (n, d) = (name.trim_end_matches('.'), domain.trim_end_matches('.'));
    n.eq_ignore_ascii_case(d)
        || (n.len() > d.len()
            && n.as_bytes()[n.len() - d.len() - 1] == b'.'
            && n[n.len() - d.len()..].eq_ignore_ascii_case(d))
}

/// nibbles - an IPv6 address as 32 hex digits.
fn nibbles(a: std::net::Ipv6Addr) -> Vec<String> {
    a.octets()
        .iter()
        .flat_map(|o| [o >> 4, o & 0xf])
        .map(|n| format!("{n:x}"))
        .collect()
}

/// reverse_name - the in-addr.arpa or ip6.arpa name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut n = nibbles(a);
            n.reverse();
            format!("{}.ip6.arpa", n.join("."))
        }
    }
}

/// url_escape - an uppercase macro's value (7.3): all but unreserved
/// characters percent-encoded.
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// parse_check - whether `text` parses as an SPF record (for fuzzing
/// and for dkimkey-like tools): Err is the permerror's reason.
pub fn parse_check(text: &str) -> Result<(), String> {
    if text.len() < 6 || !text.as_bytes()[..6].eq_ignore_ascii_case(b"v=spf1") {
        return Err("not an SPF record".into());
    }
    parse_record(text).map(drop).map_err(|(_, why)| why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Zone;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(z: &Zone, client: &str, sender: &str) -> Spf {
        check_mailfrom(z, ip(client), sender, "mx.example.net", "mail.test", 1000)
    }

    #[test]
    fn mechanisms() {
        let mut z = Zone::default();
        z.txt(
            "a.example",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:h.a.example mx -all",
        )
        .add("h.a.example", TYPE_A, Record::Addr(ip("198.51.100.1")))
        .add(
            "a.example",
            TYPE_MX,
            Record::Mx {
                preference: 10,
                exchange: "mx.a.example".into(),
            },
        )
        .add("mx.a.example", TYPE_A, Record::Addr(ip("198.51.100.2")))
        .add("mx.a.example", TYPE_AAAA, Record::Addr(ip("2001:db9::2")));
        for (client, want) in [
            ("192.0.2.77", SpfResult::Pass),
            ("2001:db8::1", SpfResult::Pass),
            ("::ffff:192.0.2.1", SpfResult::Pass),
            ("198.51.100.1", SpfResult::Pass),
            ("198.51.100.2", SpfResult::Pass),
            ("2001:db9::2", SpfResult::Pass),
            ("203.0.113.9", SpfResult::Fail),
        ] {
            assert_eq!(run(&z, client, "x@a.example").result, want, "{client}");
        }
        // No record, a single label, a null sender checked as HELO.
        assert_eq!(run(&z, "192.0.2.1", "x@b.example").result, SpfResult::None);
        assert_eq!(run(&z, "192.0.2.1", "x@localhost").result, SpfResult::None);
        z.txt("mx.example.net", "v=spf1 -all");
        assert_eq!(run(&z, "192.0.2.1", "").result, SpfResult::Fail);
    }

    #[test]
    fn include_redirect_exists_ptr_and_exp() {
        let mut z = Zone::default();
        z.txt("inc.example", "v=spf1 include:other.example ~all")
            .txt("other.example", "v=spf1 ip4:10.0.0.1 -all")
            .txt("red.example", "v=spf1 redirect=inc.example")
            .txt("ex.example", "v=spf1 exists:%{ir}.%{l1r+-}.ok.example ?all")
            .add(
                "1.0.0.10.joe.ok.example",
                TYPE_A,
                Record::Addr(ip("127.0.0.2")),
            )
            .txt("ptr.example", "v=spf1 ptr -all exp=why.example")
            .txt("why.example", "%{i} is not one of %{d}'s servers, %{l}")
            .add(
                "1.0.0.10.in-addr.arpa",
                TYPE_PTR,
                Record::Ptr("host.ptr.example".into()),
            )
            .add("host.ptr.example", TYPE_A, Record::Addr(ip("10.0.0.1")));
        assert_eq!(run(&z, "10.0.0.1", "a@inc.example").result, SpfResult::Pass);
        assert_eq!(
            run(&z, "10.0.0.2", "a@inc.example").result,
            SpfResult::SoftFail
        );
        assert_eq!(
            run(&z, "10.0.0.2", "a@red.example").result,
            SpfResult::SoftFail
        );
        assert_eq!(
            run(&z, "10.0.0.1", "joe-x@ex.example").result,
            SpfResult::Pass
        );
        assert_eq!(
            run(&z, "10.0.0.1", "bob@ex.example").result,
            SpfResult::Neutral
        );
        assert_eq!(run(&z, "10.0.0.1", "a@ptr.example").result, SpfResult::Pass);
        let f = run(&z, "10.0.0.9", "ann@ptr.example");
        assert_eq!(f.result, SpfResult::Fail);
        assert_eq!(
            f.explanation.as_deref(),
            Some("10.0.0.9 is not one of ptr.example's servers, ann")
        );
    }

    #[test]
    fn errors_and_limits() {
        let mut z = Zone::default();
        z.txt("two.example", "v=spf1 -all")
            .txt("two.example", "v=spf1 +all")
            .txt("bad.example", "v=spf1 ip4:1.2.3.4 foo:bar -all")
            .txt("cidr.example", "v=spf1 ip4:1.2.3.4/33")
            .txt("incnone.example", "v=spf1 include:nothing.example")
            .txt(
                "redir2.example",
                "v=spf1 redirect=a.example redirect=b.example",
            )
            .txt(
                "void.example",
                "v=spf1 a:n1.example a:n2.example a:n3.example -all",
            )
            .txt("temp.example", "v=spf1 a:down.example -all")
            .fail("down.example", TYPE_A)
            .txt("loop.example", "v=spf1 include:loop.example");
        let many: String = (0..11).map(|i| format!(" a:h{i}.many.example")).collect();
        z.txt("many.example", &format!("v=spf1{many} -all"));
        for i in 0..11 {
            z.add(
                &format!("h{i}.many.example"),
                TYPE_A,
                Record::Addr(ip("192.0.2.200")),
            );
        }
        for (d, want) in [
            ("two.example", SpfResult::PermError),
            ("bad.example", SpfResult::PermError),
            ("cidr.example", SpfResult::PermError),
            ("incnone.example", SpfResult::PermError),
            ("redir2.example", SpfResult::PermError),
            ("void.example", SpfResult::PermError),
            ("temp.example", SpfResult::TempError),
            ("loop.example", SpfResult::PermError),
            ("many.example", SpfResult::PermError),
        ] {
            let r = run(&z, "192.0.2.1", &format!("x@{d}"));
            assert_eq!(r.result, want, "{d}: {}", r.reason);
        }
        z.fail("tfail.example", posthorn_dns::TYPE_TXT);
        assert_eq!(
            run(&z, "192.0.2.1", "x@tfail.example").result,
            SpfResult::TempError
        );
    }

    #[test]
    fn macros() {
        let z = Zone::default();
        let q = Query {
            ip: ip("192.0.2.3"),
            sender: "strong-bad@email.example.com",
            helo: "mx.example.org",
            receiver: "mail.test",
            now: 1000,
        };
        let mut st = State {
            dns: &z,
            q: &q,
            lookups: 0,
            void: 0,
        };
        // RFC 7208 7.4's examples.
        for (m, want) in [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            ("%{S}", "strong-bad%40email.example.com"),
            ("%%%_%-", "% %20"),
        ] {
            assert_eq!(
                st.expand(m, "email.example.com", false).unwrap(),
                want,
                "{m}"
            );
        }
        let q6 = Query {
            ip: ip("2001:db8::cb01"),
            ..q
        };
        let mut st = State {
            dns: &z,
            q: &q6,
            lookups: 0,
            void: 0,
        };
        assert_eq!(
            st.expand("%{ir}.%{v}._spf.%{d2}", "email.example.com", false)
                .unwrap(),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
        assert!(st.expand("%{c}", "x", false).is_err());
        assert!(st.expand("%{d0}", "x", false).is_err());
        assert!(st.expand("%{x}", "x", false).is_err());
        assert!(st.expand("%x", "x", false).is_err());
    }
}
