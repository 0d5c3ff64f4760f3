//! proxy - the HAProxy PROXY protocol, versions 1 (text) and 2 (binary),
//! which a load balancer puts before the client's first byte to say who
//! the client is. Sans-I/O: feed the first bytes of the connection, get
//! the header and how many bytes it took, "need more", or an error.
//! Accepted only from trusted networks: anyone else could claim any address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes (the spec's bound).
const V1_MAX: usize = 107;

/// What the proxy said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// The real client and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A health check or an unknown family: use the socket's own addresses.
    Local,
}

/// parse - Ok(None) when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
    if buf.len() < V2_SIG.len() {
        let v1 = b"PROXY ".starts_with(&buf[..buf.len().min(6)]);
        let v2 = V2_SIG.starts_with(buf);
        return if v1 || v2 {
            Ok(None)
        } else {
            Err("no PROXY header")
        };
    }
    if buf.starts_with(V2_SIG) {
        return parse_v2(buf);
    }
    if buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    Err("no PROXY header")
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err("PROXY v1 line too long")
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err("PROXY v1 line too long");
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| "PROXY v1 not ASCII")?;
    let f: Vec<&str> = line.split(' ').collect();
    let h = match f.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Header::Local,
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let s: IpAddr = src.parse().map_err(|_| "PROXY v1 bad source")?;
            let d: IpAddr = dst.parse().map_err(|_| "PROXY v1 bad destination")?;
            if (*fam == "TCP4") != (s.is_ipv4() && d.is_ipv4())
                || (*fam == "TCP6") != (s.is_ipv6() && d.is_ipv6())
            {
                return Err("PROXY v1 family mismatch");
            }
            let sp: u16 = sport.parse().map_err(|_| "PROXY v1 bad port")?;
            let dp: u16 = dport.parse().map_err(|_| "PROXY v1 bad port")?;
            Header::Proxied {
                source: SocketAddr::new(s, sp),
                destination: SocketAddr::new(d, dp),
            }
        }
        _ => return Err("PROXY v1 malformed"),
    };
    Ok(Some((h, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err("PROXY v2 bad version");
    }
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let total = 16 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    match ver_cmd & 0x0f {
        0 => return Ok(Some((Header::Local, total))),
        1 => {}
        _ => return Err("PROXY v2 bad command"),
    }
    let h = match fam {
        0x11 if body.len() >= 12 => {
            let s = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let d = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            let sp = u16::from_be_bytes([body[8], body[9]]);
            let dp = u16::from_be_bytes([body[10], body[11]]);
            Header::Proxied {
                source: SocketAddr::new(s.into(), sp),
                destination: SocketAddr::new(d.into(), dp),
            }
        }
        0x21 if body.len() >= 36 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&body[0..16]);
            d.copy_from_slice(&body[16..32]);
            let sp = u16::from_be_bytes([body[32], body[33]]);
            let dp = u16::from_be_bytes([body[34], body[35]]);
            Header::Proxied {
                source: SocketAddr::new(Ipv6Addr::from(s).into(), sp),
                destination: SocketAddr::new(Ipv6Addr::from(d).into(), dp),
            }
        }
        0x11 | 0x21 => return Err("PROXY v2 address block too short"),
        _ => Header::Local,
    };
    Ok(Some((h, total)))
}

pub use posthorn_mail::net::Net;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1() {
        let b = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n";
        let (h, n) = parse(b).unwrap().unwrap();
        assert_eq!(n, 44);
        assert_eq!(
            h,
            Header::Proxied {
                source: "192.0.2.7:56324".parse().unwrap(),
                destination: "198.51.100.1:25".parse().unwrap()
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0,
            Header::Local
        );
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7").unwrap(), None);
        assert!(parse(b"PROXY TCP4 ::1 ::1 1 2\r\n").is_err());
        assert!(parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n").is_err());
        assert!(parse(b"EHLO there\r\n").is_err());
        assert!(
            parse(
                &[b'P', b'R', b'O', b'X', b'Y', b' ']
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(b'x', 200))
                    .collect::<Vec<u8>>()
            )
            .is_err()
        );
    }

    #[test]
    fn v2() {
        let mut b = V2_SIG.to_vec();
        b.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0, 25,
        ]);
        b.extend_from_slice(b"EHLO");
        let (h, n) = parse(&b).unwrap().unwrap();
        assert_eq!(n, 28);
        assert_eq!(
            h,
            Header::Proxied {
                source: "192.0.2.7:56324".parse().unwrap(),
                destination: "198.51.100.1:25".parse().unwrap()
            }
        );
        assert_eq!(parse(&b[..20]).unwrap(), None);
        let mut local = V2_SIG.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap(), (Header::Local, 16));
        let mut bad = V2_SIG.to_vec();
        bad.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&bad).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_never_claims_more_than_it_has(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, n))) = parse(&b) {
                prop_assert!(n <= b.len());
            }
        }
    }
}
