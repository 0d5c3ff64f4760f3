//! dns - a small synchronous stub resolver for the three questions mail
//! routing asks: MX, A and AAAA. One question per query over UDP, again
//! over TCP when the answer is truncated, to the `resolver` key's server
//! or the nameservers of /etc/resolv.conf (recursion desired: the server
//! does the work).
//!
//! Distrusts the answer: the ID, the QR bit and the question must match;
//! every length is checked against the packet; names follow at most 32
//! compression pointers and stay under 255 octets. A malformed answer is a
//! temporary failure, never "no such domain".

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

pub const TYPE_A: u16 = 1;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;

/// Time to wait for one server's answer to one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per server.
const TRIES: usize = 2;

/// One answer record of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Mx { preference: u16, exchange: String },
    Addr(IpAddr),
}

/// What the DNS said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the asked type (possibly after a CNAME the server followed).
    Records(Vec<Record>),
    /// The name exists but has no records of that type.
    NoData,
    /// The name does not exist (RCODE 3): a permanent answer.
    NxDomain,
}

/// A lookup that could not be answered now (SERVFAIL, timeout, garbage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempError(pub String);

/// The servers to ask.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub servers: Vec<SocketAddr>,
}

impl Resolver {
    /// new - the configured server, else /etc/resolv.conf's, else 127.0.0.1.
    pub fn new(configured: Option<SocketAddr>) -> Resolver {
        if let Some(s) = configured {
            return Resolver { servers: vec![s] };
        }
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers = parse_resolv_conf(&text);
        if servers.is_empty() {
            servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        Resolver { servers }
    }

    /// query - ask for `qtype` records of `name`, each server in turn.
    pub fn query(&self, name: &str, qtype: u16) -> Result<Answer, TempError> {
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

    /// ask - one try at one server: UDP, then TCP when truncated.
    fn ask(&self, server: SocketAddr, name: &str, qtype: u16) -> Result<Answer, TempError> {
        let id = (posthorn_sys::fsio::random_u64() & 0xffff) as u16;
        let q = build_query(id, name, qtype).map_err(TempError)?;
        let terr = |e: std::io::Error| TempError(format!("DNS server {server}: {e}"));
        let bind: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = UdpSocket::bind(bind).map_err(terr)?;
        sock.connect(server).map_err(terr)?;
        sock.set_read_timeout(Some(TRY_TIMEOUT)).map_err(terr)?;
        sock.send(&q).map_err(terr)?;
        let mut buf = vec![0u8; 4096];
        let n = loop {
            let n = sock.recv(&mut buf).map_err(terr)?;
            // A stray packet with another ID is ignored, not believed.
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                break n;
            }
        };
        buf.truncate(n);
        if buf.len() >= 4 && buf[2] & 0x02 != 0 {
            buf = ask_tcp(server, &q).map_err(terr)?;
        }
        parse_answer(&buf, id, name, qtype)
    }
}

/// ask_tcp - the query over TCP with its two-octet length prefix.
fn ask_tcp(server: SocketAddr, q: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, TRY_TIMEOUT)?;
    s.set_read_timeout(Some(TRY_TIMEOUT))?;
    s.set_write_timeout(Some(TRY_TIMEOUT))?;
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
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(format!("bad domain name \"{name}\""));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad domain name \"{name}\""));
        }
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    Ok(p)
}

/// read_name - the (possibly compressed) name at `pos`; returns it and the
/// position after it in the original place.
fn read_name(p: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
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
                if !name.is_empty() {
                    name.push('.');
                }
                // Host names are LDH; anything else is kept visible but inert.
                name.extend(label.iter().map(|&b| {
                    if b.is_ascii_graphic() && b != b'\\' {
                        b as char
                    } else {
                        '?'
                    }
                }));
                if name.len() > 255 {
                    return None;
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

/// parse_answer - the records of `qtype` in a response to query `id`.
pub fn parse_answer(p: &[u8], id: u16, name: &str, qtype: u16) -> Result<Answer, TempError> {
    let bad = || TempError(format!("malformed DNS answer for {name}"));
    if p.len() < 12 || u16_at(p, 0) != Some(id) || p[2] & 0x80 == 0 {
        return Err(bad());
    }
    let qd = u16_at(p, 4).ok_or_else(bad)?;
    let an = u16_at(p, 6).ok_or_else(bad)?;
    if qd != 1 {
        return Err(bad());
    }
    let (qname, mut pos) = read_name(p, 12).ok_or_else(bad)?;
    if !qname.eq_ignore_ascii_case(name.trim_end_matches('.')) || u16_at(p, pos) != Some(qtype) {
        return Err(bad());
    }
    pos += 4;
    match p[3] & 0x0f {
        0 => {}
        3 => return Ok(Answer::NxDomain),
        2 => {
            return Err(TempError(format!(
                "DNS server failure (SERVFAIL) for {name}"
            )));
        }
        r => return Err(TempError(format!("DNS error (RCODE {r}) for {name}"))),
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let (_, after) = read_name(p, pos).ok_or_else(bad)?;
        let rtype = u16_at(p, after).ok_or_else(bad)?;
        let rdlen = u16_at(p, after + 8).ok_or_else(bad)? as usize;
        let rd = after + 10;
        let rdata = p.get(rd..rd + rdlen).ok_or_else(bad)?;
        if rtype == qtype {
            match qtype {
                TYPE_A if rdlen == 4 => {
                    let o: [u8; 4] = rdata.try_into().map_err(|_| bad())?;
                    out.push(Record::Addr(IpAddr::from(o)));
                }
                TYPE_AAAA if rdlen == 16 => {
                    let o: [u8; 16] = rdata.try_into().map_err(|_| bad())?;
                    out.push(Record::Addr(IpAddr::from(o)));
                }
                TYPE_MX if rdlen >= 3 => {
                    let preference = u16_at(p, rd).ok_or_else(bad)?;
                    let (exchange, _) = read_name(p, rd + 2).ok_or_else(bad)?;
                    out.push(Record::Mx {
                        preference,
                        exchange: exchange.to_ascii_lowercase(),
                    });
                }
                _ => return Err(bad()),
            }
        }
        pos = rd + rdlen;
    }
    Ok(if out.is_empty() {
        Answer::NoData
    } else {
        Answer::Records(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reply - a response to `q` with the given RCODE and answer records
    /// (type, rdata), the owner name compressed to the question.
    fn reply(q: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut p = q.to_vec();
        p[2] |= 0x80;
        p[3] = 0x80 | rcode;
        p[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, rd) in answers {
            p.extend_from_slice(&[0xc0, 12]);
            p.extend_from_slice(&t.to_be_bytes());
            p.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
            p.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            p.extend_from_slice(rd);
        }
        p
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
        assert_eq!(
            parse_resolv_conf("# x\nnameserver 10.0.0.1\nnameserver ::1\nsearch x\n"),
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
