//! posthorn-dns - a small synchronous stub resolver for the questions mail
//! asks: MX, A and AAAA for routing (remote), TXT and PTR for SPF, DKIM
//! and DMARC (smtpd). One question per query over UDP, again over TCP when
//! the answer is truncated, to the `resolver` key's server or the
//! nameservers of /etc/resolv.conf (recursion desired: the server does the
//! work).
//!
//! Distrusts the answer, which any host on the path can forge:
//! - the ID, the QR bit and the question must match, and the question's
//!   name must come back in the very mix of upper and lower case we sent
//!   (0x20 randomisation, draft-vixie-dnsext-dns0x20): a blind spoofer has
//!   to guess those bits as well as the ID;
//! - a packet that fails those checks is dropped, not believed, and after
//!   MAX_STRAY of them (or the try's time) the try gives up: a flood of
//!   wrong packets cannot keep us waiting forever;
//! - an answer record counts only if its class is IN and its owner is the
//!   name asked for or a name the CNAME chain from it leads to;
//! - every length is checked against the packet; names follow at most 32
//!   compression pointers and stay under 255 octets.
//!
//! A malformed answer or a timeout is a temporary failure (`TempError`),
//! never "no such domain": SPF and DMARC turn it into temperror.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;

const CLASS_IN: u16 = 1;

/// Time to wait for one server's answer to one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per server.
const TRIES: usize = 2;
/// Packets that are not the answer (wrong ID, wrong question) before a try
/// gives up.
pub const MAX_STRAY: usize = 16;
/// CNAMEs followed from the name asked for.
const MAX_CNAME: usize = 8;

/// One answer record of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Mx {
        preference: u16,
        exchange: String,
    },
    Addr(IpAddr),
    /// A TXT record's character-strings, in order (SPF and DKIM join them).
    Txt(Vec<Vec<u8>>),
    /// A PTR record's target name.
    Ptr(String),
}

/// What the DNS said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the asked type (possibly after a CNAME chain).
    Records(Vec<Record>),
    /// The name exists but has no records of that type.
    NoData,
    /// The name does not exist (RCODE 3): a permanent answer.
    NxDomain,
}

/// A lookup that could not be answered now (SERVFAIL, timeout, garbage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempError(pub String);

impl std::fmt::Display for TempError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The servers to ask, and the time by which every answer must be in.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub servers: Vec<SocketAddr>,
    /// No query runs past this instant (SPF's overall limit, RFC 7208 4.6.4).
    pub deadline: Option<Instant>,
}

/// What one packet from the server turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer to our question.
    Answer(Answer),
    /// The answer says the name is an alias; ask again for this name.
    Alias(String),
    /// Not an answer to our question (another ID or question): ignore it.
    Stray,
}

impl Resolver {
    /// new - the configured server, else /etc/resolv.conf's, else 127.0.0.1.
    pub fn new(configured: Option<SocketAddr>) -> Resolver {
        if let Some(s) = configured {
            return Resolver {
                servers: vec![s],
                deadline: None,
            };
        }
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers = parse_resolv_conf(&text);
        if servers.is_empty() {
            servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        Resolver {
            servers,
            deadline: None,
        }
    }

    /// until - the same servers, every query done by `deadline`.
    pub fn until(&self, deadline: Instant) -> Resolver {
        Resolver {
            servers: self.servers.clone(),
            deadline: Some(self.deadline.map_or(deadline, |d| d.min(deadline))),
        }
    }

    /// query - ask for `qtype` records of `name`, each server in turn,
    /// following a CNAME chain the server left unfinished.
    pub fn query(&self, name: &str, qtype: u16) -> Result<Answer, TempError> {
        let mut name = name.trim_end_matches('.').to_string();
        for _ in 0..=MAX_CNAME {
            match self.query_one(&name, qtype)? {
                Reply::Answer(a) => return Ok(a),
                Reply::Alias(target) => name = target,
                Reply::Stray => break,
            }
        }
        Err(TempError(format!("CNAME chain too long at {name}")))
    }

    /// query_one - one question, each server and try in turn.
    fn query_one(&self, name: &str, qtype: u16) -> Result<Reply, TempError> {
        let mut last = TempError(format!("no DNS server to ask for {name}"));
        for server in &self.servers {
            for _ in 0..TRIES {
                match self.ask(*server, name, qtype) {
                    Ok(a) => return Ok(a),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// time_left - how long the next step may wait.
    fn time_left(&self, name: &str) -> Result<Duration, TempError> {
        match self.deadline {
            None => Ok(TRY_TIMEOUT),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(TempError(format!("DNS lookups took too long at {name}")))
                } else {
                    Ok(left.min(TRY_TIMEOUT))
                }
            }
        }
    }

    /// ask - one try at one server: UDP, then TCP when truncated.
    fn ask(&self, server: SocketAddr, name: &str, qtype: u16) -> Result<Reply, TempError> {
        let r = posthorn_sys::fsio::random_u64();
        let id = (r & 0xffff) as u16;
        let sent = randomize_case(name, r >> 16);
        let q = build_query(id, &sent, qtype).map_err(TempError)?;
        let terr = |e: std::io::Error| TempError(format!("DNS server {server}: {e}"));
        let bind: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = UdpSocket::bind(bind).map_err(terr)?;
        sock.connect(server).map_err(terr)?;
        sock.send(&q).map_err(terr)?;
        let until = Instant::now() + self.time_left(name)?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..MAX_STRAY {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).map_err(terr)?;
            let n = sock.recv(&mut buf).map_err(terr)?;
            let p = &buf[..n];
            if is_truncated(p, id) {
                let p = ask_tcp(server, &q, self.time_left(name)?).map_err(terr)?;
                return match parse_reply(&p, id, &sent, qtype)? {
                    Reply::Stray => Err(TempError(format!(
                        "DNS server {server}: a TCP answer to another question"
                    ))),
                    r => Ok(r),
                };
            }
            match parse_reply(p, id, &sent, qtype)? {
                Reply::Stray => continue,
                r => return Ok(r),
            }
        }
        Err(TempError(format!(
            "DNS server {server}: no answer for {name} (timed out or only stray packets)"
        )))
    }
}

/// is_truncated - a response to `id` with TC set.
fn is_truncated(p: &[u8], id: u16) -> bool {
    p.len() >= 4 && u16_at(p, 0) == Some(id) && p[2] & 0x80 != 0 && p[2] & 0x02 != 0
}

/// randomize_case - `name` with each letter's case taken from a bit of
/// `bits` (0x20 randomisation); past 48 letters the bits repeat.
pub fn randomize_case(name: &str, bits: u64) -> String {
    let mut i = 0;
    name.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                let up = bits >> (i % 48) & 1 == 1;
                i += 1;
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

/// ask_tcp - the query over TCP with its two-octet length prefix.
fn ask_tcp(server: SocketAddr, q: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(q);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// parse_resolv_conf - the `nameserver` addresses, at most three (as libc).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next() != Some("nameserver") {
                return None;
            }
            // A scoped IPv6 address (fe80::1%eth0) is not supported here.
            w.next()?
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .take(3)
        .collect()
}

/// build_query - a query packet: header with RD, one question of class IN.
/// Labels are printable ASCII without '.', 1 to 63 octets.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(format!("bad domain name \"{name}\""));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || !label.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("bad domain name \"{name}\""));
        }
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(p)
}

/// read_name - the (possibly compressed) name at `pos`, in presentation
/// form (octets outside letters, digits, '-', '_' and '*' as `\DDD`, so a
/// '.' inside a label is not a label break); returns it and the position
/// after it in the original place.
fn read_name(p: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    let mut wire_len = 1;
    loop {
        let len = *p.get(pos)? as usize;
        match len & 0xc0 {
            0xc0 => {
                let off = ((len & 0x3f) << 8) | *p.get(pos + 1)? as usize;
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 32 {
                    return None;
                }
                pos = off;
            }
            0 if len == 0 => {
                return Some((name, end.unwrap_or(pos + 1)));
            }
            0 => {
                let label = p.get(pos + 1..pos + 1 + len)?;
                wire_len += 1 + len;
                if wire_len > 255 {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*' {
                        name.push(b as char);
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                pos += 1 + len;
            }
            _ => return None,
        }
    }
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// same_name - DNS names compare without regard to ASCII case.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// parse_answer - the records of `qtype` in a response to query `id` for
/// `name`; a CNAME chain the server did not finish, or a packet that is
/// not the answer, is an error here (`parse_reply` tells them apart).
pub fn parse_answer(p: &[u8], id: u16, name: &str, qtype: u16) -> Result<Answer, TempError> {
    match parse_reply(p, id, name, qtype)? {
        Reply::Answer(a) => Ok(a),
        Reply::Alias(t) => Err(TempError(format!(
            "DNS answer for {name} ends in an unresolved alias {t}"
        ))),
        Reply::Stray => Err(TempError(format!(
            "DNS answer for another question than {name}"
        ))),
    }
}

/// parse_reply - one packet checked against the query (`id`, `sent`: the
/// name exactly as sent, case included, and `qtype`): the answer, an
/// unfinished CNAME chain, or a stray packet.
pub fn parse_reply(p: &[u8], id: u16, sent: &str, qtype: u16) -> Result<Reply, TempError> {
    let name = sent.trim_end_matches('.');
    let bad = || TempError(format!("malformed DNS answer for {name}"));
    if p.len() < 12 || u16_at(p, 0) != Some(id) || p[2] & 0x80 == 0 {
        return Ok(Reply::Stray);
    }
    let qd = u16_at(p, 4).ok_or_else(bad)?;
    let an = u16_at(p, 6).ok_or_else(bad)?;
    if qd != 1 {
        return Ok(Reply::Stray);
    }
    // The question exactly as sent, case and class included: anything
    // else answers a question we did not ask (or was forged blind).
    let Some((qname, mut pos)) = read_name(p, 12) else {
        return Ok(Reply::Stray);
    };
    if qname != name || u16_at(p, pos) != Some(qtype) || u16_at(p, pos + 2) != Some(CLASS_IN) {
        return Ok(Reply::Stray);
    }
    pos += 4;
    match p[3] & 0x0f {
        0 | 3 => {}
        2 => {
            return Err(TempError(format!(
                "DNS server failure (SERVFAIL) for {name}"
            )));
        }
        r => return Err(TempError(format!("DNS error (RCODE {r}) for {name}"))),
    }
    // Every answer record: (owner, type, rdata start, rdata length).
    let mut rrs = Vec::new();
    for _ in 0..an {
        let (owner, after) = read_name(p, pos).ok_or_else(bad)?;
        let rtype = u16_at(p, after).ok_or_else(bad)?;
        let class = u16_at(p, after + 2).ok_or_else(bad)?;
        let rdlen = u16_at(p, after + 8).ok_or_else(bad)? as usize;
        let rd = after + 10;
        p.get(rd..rd + rdlen).ok_or_else(bad)?;
        pos = rd + rdlen;
        // Another class (CHAOS, HESIOD) answers nothing we asked.
        if class == CLASS_IN {
            rrs.push((owner, rtype, rd, rdlen));
        }
    }
    // Follow the CNAME chain from the name asked for; only its last name
    // may own the records.
    let mut target = name.to_string();
    let mut hops = 0;
    while let Some(&(_, _, rd, _)) = rrs
        .iter()
        .find(|(o, t, _, _)| *t == TYPE_CNAME && qtype != TYPE_CNAME && same_name(o, &target))
    {
        hops += 1;
        if hops > MAX_CNAME {
            return Err(TempError(format!("CNAME chain too long for {name}")));
        }
        target = read_name(p, rd).ok_or_else(bad)?.0;
    }
    let mut out = Vec::new();
    for (_, _, rd, rdlen) in rrs
        .iter()
        .filter(|(o, t, _, _)| *t == qtype && same_name(o, &target))
    {
        let (rd, rdlen) = (*rd, *rdlen);
        let rdata = &p[rd..rd + rdlen];
        out.push(match qtype {
            TYPE_A if rdlen == 4 => {
                let o: [u8; 4] = rdata.try_into().map_err(|_| bad())?;
                Record::Addr(IpAddr::from(o))
            }
            TYPE_AAAA if rdlen == 16 => {
                let o: [u8; 16] = rdata.try_into().map_err(|_| bad())?;
                Record::Addr(IpAddr::from(o))
            }
            TYPE_MX if rdlen >= 3 => {
                let preference = u16_at(p, rd).ok_or_else(bad)?;
                let (exchange, end) = read_name(p, rd + 2).ok_or_else(bad)?;
                if end > rd + rdlen {
                    return Err(bad());
                }
                Record::Mx {
                    preference,
                    exchange: exchange.to_ascii_lowercase(),
                }
            }
            TYPE_PTR | TYPE_CNAME => {
                let (t, end) = read_name(p, rd).ok_or_else(bad)?;
                if end > rd + rdlen {
                    return Err(bad());
                }
                Record::Ptr(t.to_ascii_lowercase())
            }
            TYPE_TXT => Record::Txt(character_strings(rdata).ok_or_else(bad)?),
            _ => return Err(bad()),
        });
    }
    if p[3] & 0x0f == 3 {
        return Ok(Reply::Answer(Answer::NxDomain));
    }
    if out.is_empty() && !same_name(&target, name) {
        return Ok(Reply::Alias(target));
    }
    Ok(Reply::Answer(if out.is_empty() {
        Answer::NoData
    } else {
        Answer::Records(out)
    }))
}

/// character_strings - TXT RDATA as its <length><octets> strings; None
/// when a length runs past the end.
fn character_strings(mut rd: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rd.split_first() {
        let s = rest.get(..len as usize)?;
        out.push(s.to_vec());
        rd = &rest[len as usize..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer record: owner (None = pointer to the question), type,
    /// class, rdata.
    type Rr = (Option<&'static str>, u16, u16, Vec<u8>);

    /// wire_name - a name as uncompressed labels.
    fn wire_name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// reply_rrs - a response to `q` with the given RCODE and records.
    fn reply_rrs(q: &[u8], rcode: u8, rrs: &[Rr]) -> Vec<u8> {
        let mut p = q.to_vec();
        p[2] |= 0x80;
        p[3] = 0x80 | rcode;
        p[6..8].copy_from_slice(&(rrs.len() as u16).to_be_bytes());
        for (owner, t, class, rd) in rrs {
            match owner {
                None => p.extend_from_slice(&[0xc0, 12]),
                Some(o) => p.extend_from_slice(&wire_name(o)),
            }
            p.extend_from_slice(&t.to_be_bytes());
            p.extend_from_slice(&class.to_be_bytes());
            p.extend_from_slice(&[0, 0, 1, 0]);
            p.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            p.extend_from_slice(rd);
        }
        p
    }

    /// reply - a response whose records are all owned by the question's name.
    fn reply(q: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let rrs: Vec<Rr> = answers
            .iter()
            .map(|(t, rd)| (None, *t, 1, rd.clone()))
            .collect();
        reply_rrs(q, rcode, &rrs)
    }

    #[test]
    fn mx_a_aaaa_nxdomain_servfail() {
        let q = build_query(7, "example.org", TYPE_MX).unwrap();
        // MX 10 mx.example.org, the second label pointing back into the question.
        let mut mx = vec![0, 10, 2, b'm', b'x', 0xc0, 12];
        let a = reply(&q, 0, &[(TYPE_MX, std::mem::take(&mut mx))]);
        assert_eq!(
            parse_answer(&a, 7, "example.org", TYPE_MX).unwrap(),
            Answer::Records(vec![Record::Mx {
                preference: 10,
                exchange: "mx.example.org".into()
            }])
        );
        // Null MX (RFC 7505): preference 0, exchange the root.
        let a = reply(&q, 0, &[(TYPE_MX, vec![0, 0, 0])]);
        assert_eq!(
            parse_answer(&a, 7, "example.org", TYPE_MX).unwrap(),
            Answer::Records(vec![Record::Mx {
                preference: 0,
                exchange: String::new()
            }])
        );
        assert_eq!(
            parse_answer(&reply(&q, 3, &[]), 7, "example.org", TYPE_MX).unwrap(),
            Answer::NxDomain
        );
        assert_eq!(
            parse_answer(&reply(&q, 0, &[]), 7, "example.org", TYPE_MX).unwrap(),
            Answer::NoData
        );
        assert!(parse_answer(&reply(&q, 2, &[]), 7, "example.org", TYPE_MX).is_err());
        // Another ID, another question: not believed.
        assert!(parse_answer(&reply(&q, 3, &[]), 8, "example.org", TYPE_MX).is_err());
        assert!(parse_answer(&reply(&q, 3, &[]), 7, "example.com", TYPE_MX).is_err());
        let q = build_query(9, "h.example", TYPE_AAAA).unwrap();
        let a = reply(
            &q,
            0,
            &[(TYPE_AAAA, [0u8; 15].iter().chain(&[1]).copied().collect())],
        );
        assert_eq!(
            parse_answer(&a, 9, "h.example", TYPE_AAAA).unwrap(),
            Answer::Records(vec![Record::Addr("::1".parse().unwrap())])
        );
    }

    #[test]
    fn txt_records_keep_their_strings() {
        let q = build_query(3, "_dmarc.example.org", TYPE_TXT).unwrap();
        let a = reply(
            &q,
            0,
            &[
                (TYPE_TXT, b"\x08v=DMARC1\x08; p=none".to_vec()),
                (TYPE_TXT, b"\x00".to_vec()),
            ],
        );
        assert_eq!(
            parse_answer(&a, 3, "_dmarc.example.org", TYPE_TXT).unwrap(),
            Answer::Records(vec![
                Record::Txt(vec![b"v=DMARC1".to_vec(), b"; p=none".to_vec()]),
                Record::Txt(vec![Vec::new()]),
            ])
        );
        // A string running past its RDATA is malformed.
        let a = reply(&q, 0, &[(TYPE_TXT, b"\x09v=DMARC1".to_vec())]);
        assert!(parse_answer(&a, 3, "_dmarc.example.org", TYPE_TXT).is_err());
    }

    /// Issue 14, hole 7: records were taken by type alone. A record owned
    /// by another name, of another class, or not on the CNAME chain is not
    /// part of the answer.
    #[test]
    fn records_must_be_owned_by_the_question_or_its_cname_chain() {
        let q = build_query(5, "a.example", TYPE_A).unwrap();
        let a = reply_rrs(
            &q,
            0,
            &[
                (Some("evil.example"), TYPE_A, 1, vec![6, 6, 6, 6]),
                (None, TYPE_A, 3, vec![7, 7, 7, 7]),
                (None, TYPE_A, 1, vec![192, 0, 2, 1]),
            ],
        );
        assert_eq!(
            parse_answer(&a, 5, "a.example", TYPE_A).unwrap(),
            Answer::Records(vec![Record::Addr("192.0.2.1".parse().unwrap())])
        );
        // Only other names' records: nothing for us.
        let a = reply_rrs(&q, 0, &[(Some("b.example"), TYPE_A, 1, vec![6, 6, 6, 6])]);
        assert_eq!(
            parse_answer(&a, 5, "a.example", TYPE_A).unwrap(),
            Answer::NoData
        );
        // a -> b -> c: only c's address counts, not a stray one for d.
        let a = reply_rrs(
            &q,
            0,
            &[
                (None, TYPE_CNAME, 1, wire_name("b.example")),
                (Some("B.example"), TYPE_CNAME, 1, wire_name("c.example")),
                (Some("d.example"), TYPE_A, 1, vec![6, 6, 6, 6]),
                (Some("c.example"), TYPE_A, 1, vec![192, 0, 2, 3]),
            ],
        );
        assert_eq!(
            parse_answer(&a, 5, "a.example", TYPE_A).unwrap(),
            Answer::Records(vec![Record::Addr("192.0.2.3".parse().unwrap())])
        );
        // A chain the server left unfinished: ask again for its end.
        let a = reply_rrs(&q, 0, &[(None, TYPE_CNAME, 1, wire_name("z.example"))]);
        assert_eq!(
            parse_reply(&a, 5, "a.example", TYPE_A).unwrap(),
            Reply::Alias("z.example".into())
        );
        // A CNAME loop ends in an error, not a hang.
        let a = reply_rrs(
            &q,
            0,
            &[
                (None, TYPE_CNAME, 1, wire_name("b.example")),
                (Some("b.example"), TYPE_CNAME, 1, wire_name("a.example")),
            ],
        );
        assert!(parse_reply(&a, 5, "a.example", TYPE_A).is_err());
    }

    /// Issue 14, hole 7: the question must come back in the case it was
    /// sent in (0x20), and packets that do not answer it are strays.
    #[test]
    fn case_randomised_question_must_match_exactly() {
        let sent = randomize_case("mx.example.org", 0b1010_1010_1010);
        assert!(sent.eq_ignore_ascii_case("mx.example.org"));
        assert_ne!(sent, "mx.example.org");
        assert_ne!(sent, randomize_case("mx.example.org", 0b0101_0101_0101));
        let q = build_query(11, &sent, TYPE_A).unwrap();
        let a = reply(&q, 0, &[(TYPE_A, vec![192, 0, 2, 9])]);
        assert!(matches!(
            parse_reply(&a, 11, &sent, TYPE_A),
            Ok(Reply::Answer(Answer::Records(_)))
        ));
        // A forger who guessed the ID but not the case bits.
        let forged = build_query(11, "mx.example.org", TYPE_A).unwrap();
        let f = reply(&forged, 0, &[(TYPE_A, vec![6, 6, 6, 6])]);
        assert_eq!(parse_reply(&f, 11, &sent, TYPE_A).unwrap(), Reply::Stray);
        // Another ID, not a response, another class in the question.
        assert_eq!(parse_reply(&a, 12, &sent, TYPE_A).unwrap(), Reply::Stray);
        assert_eq!(parse_reply(&q, 11, &sent, TYPE_A).unwrap(), Reply::Stray);
        let mut chaos = a.clone();
        let qclass = q.len() - 1;
        chaos[qclass] = 3;
        assert_eq!(
            parse_reply(&chaos, 11, &sent, TYPE_A).unwrap(),
            Reply::Stray
        );
    }

    /// Issue 14, hole 7: a flood of packets with the wrong ID used to keep
    /// the client reading forever (each one restarted the wait); now the
    /// try ends after MAX_STRAY of them, well before its timeout.
    #[test]
    fn a_flood_of_wrong_ids_ends_the_try() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            // Both tries of the one server.
            for _ in 0..TRIES {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let q = buf[..n].to_vec();
                let id = u16_at(&q, 0).unwrap();
                for k in 0..40u16 {
                    let mut r = reply(&q, 0, &[(TYPE_A, vec![6, 6, 6, 6])]);
                    r[..2].copy_from_slice(&id.wrapping_add(1 + k).to_be_bytes());
                    let _ = server.send_to(&r, from);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let r = Resolver {
            servers: vec![addr],
            deadline: None,
        };
        let start = Instant::now();
        let e = r.query("a.example", TYPE_A).unwrap_err();
        assert!(e.0.contains("stray"), "{e:?}");
        assert!(start.elapsed() < TRY_TIMEOUT, "{:?}", start.elapsed());
        t.join().unwrap();
    }

    /// A truncated answer is asked again over TCP; a deadline in the past
    /// makes every query a temporary error at once.
    #[test]
    fn truncated_goes_to_tcp_and_the_deadline_holds() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            let mut tc = reply(&buf[..n], 0, &[]);
            tc[2] |= 0x02;
            udp.send_to(&tc, from).unwrap();
            let (mut s, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut q).unwrap();
            let long = vec![b'x'; 255];
            let mut rd = vec![255u8];
            rd.extend_from_slice(&long);
            rd.push(3);
            rd.extend_from_slice(b"end");
            let r = reply(&q, 0, &[(TYPE_TXT, rd)]);
            s.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
            s.write_all(&r).unwrap();
        });
        let r = Resolver {
            servers: vec![addr],
            deadline: None,
        };
        assert_eq!(
            r.query("big.example", TYPE_TXT).unwrap(),
            Answer::Records(vec![Record::Txt(vec![vec![b'x'; 255], b"end".to_vec()])])
        );
        t.join().unwrap();
        let gone = r.until(Instant::now() - Duration::from_secs(1));
        let start = Instant::now();
        assert!(gone.query("big.example", TYPE_TXT).is_err());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        let q = build_query(1, "a.example", TYPE_MX).unwrap();
        // A pointer loop in the exchange.
        let a = reply(&q, 0, &[(TYPE_MX, vec![0, 1, 0xc0, 41])]);
        assert!(parse_answer(&a, 1, "a.example", TYPE_MX).is_err());
        let good = reply(&q, 0, &[(TYPE_MX, vec![0, 1, 1, b'x', 0])]);
        for cut in 0..good.len() {
            let _ = parse_answer(&good[..cut], 1, "a.example", TYPE_MX);
        }
        let mut seed = 1u64;
        for _ in 0..20_000 {
            let mut p = good.clone();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (seed >> 33) as usize % p.len();
            p[i] = (seed >> 17) as u8;
            let _ = parse_answer(&p, 1, "a.example", TYPE_MX);
        }
        assert!(build_query(1, "a..b", TYPE_A).is_err());
        assert!(build_query(1, "a b.example", TYPE_A).is_err());
        assert_eq!(
            parse_resolv_conf("# x\nnameserver 10.0.0.1\nnameserver ::1\nsearch x\n"),
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
