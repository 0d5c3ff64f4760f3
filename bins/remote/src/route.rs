//! route - which hosts, in which order, take mail for one domain: a
//! `[transport]` route first, then `relayhost`, else the domain's MX
//! records (RFC 5321 §5.1): lowest preference first, random order among
//! equals, the domain's own addresses when it has no MX, and a null MX
//! (RFC 7505) a permanent refusal. MX hosts at or above our own preference
//! are dropped, so mail never loops back to us.
//!
//! Distrusts DNS: a lookup that fails for a passing reason (SERVFAIL,
//! timeout, garbage) is always temporary; only NXDOMAIN and the null MX
//! are permanent.

use posthorn_dns::{Answer, Record, Resolver, TYPE_A, TYPE_AAAA, TYPE_MX};
use posthorn_mail::Config;
use posthorn_mail::config::{Route, parse_route};
use std::net::{IpAddr, SocketAddr};

/// Where the message goes and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Host names (or IP addresses) in the order to try them.
    pub hosts: Vec<String>,
    pub port: u16,
    /// The relayhost: AUTH and `[relay] tls_required` apply.
    pub relay: bool,
}

/// A destination that cannot be reached: temporary or for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unroutable {
    pub temporary: bool,
    pub dsn: &'static str,
    pub text: String,
}

fn temp(dsn: &'static str, text: String) -> Unroutable {
    Unroutable {
        temporary: true,
        dsn,
        text,
    }
}

fn perm(dsn: &'static str, text: String) -> Unroutable {
    Unroutable {
        temporary: false,
        dsn,
        text,
    }
}

/// plan - the hosts for `domain`.
pub fn plan(cfg: &Config, dns: &Resolver, domain: &str) -> Result<Plan, Unroutable> {
    let original = domain;
    // An internationalized domain is looked up by its A-labels.
    let domain = crate::idn::to_ascii(domain.trim_end_matches('.'))
        .ok_or_else(|| {
            perm(
                "5.1.2",
                format!("bad internationalized domain name {domain}"),
            )
        })?
        .to_ascii_lowercase();
    let (route, relay) = match cfg
        .transport_for(&domain)
        .or_else(|| cfg.transport_for(original))
    {
        Some(r) => (Some(r.clone()), false),
        None => match cfg.relayhost.as_deref().map(parse_route) {
            Some(Ok(r)) => (Some(r), true),
            Some(Err(e)) => return Err(temp("4.3.5", format!("relayhost: {e}"))),
            None => (None, false),
        },
    };
    match route {
        Some(Route::Local) => Err(temp(
            "4.3.5",
            format!("{domain} is routed \"local\": qrun should not have sent it here"),
        )),
        Some(Route::Smtp { host, port, mx }) => {
            let port = port.unwrap_or(if relay { 25 } else { cfg.remote.port });
            let hosts = if mx {
                mx_hosts(cfg, dns, &host)?
            } else {
                vec![host]
            };
            Ok(Plan { hosts, port, relay })
        }
        None => {
            // An address literal: user@[192.0.2.1].
            if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
                let ip = lit.strip_prefix("ipv6:").unwrap_or(lit);
                return match ip.parse::<IpAddr>() {
                    Ok(ip) => Ok(Plan {
                        hosts: vec![ip.to_string()],
                        port: cfg.remote.port,
                        relay: false,
                    }),
                    Err(_) => Err(perm("5.1.2", format!("bad address literal [{lit}]"))),
                };
            }
            Ok(Plan {
                hosts: mx_hosts(cfg, dns, &domain)?,
                port: cfg.remote.port,
                relay: false,
            })
        }
    }
}

/// mx_hosts - the exchanges for `domain` in the order to try them.
fn mx_hosts(cfg: &Config, dns: &Resolver, domain: &str) -> Result<Vec<String>, Unroutable> {
    let records = match dns.query(domain, TYPE_MX) {
        Ok(Answer::Records(r)) => r,
        Ok(Answer::NoData) => return Ok(vec![domain.to_string()]),
        Ok(Answer::NxDomain) => {
            return Err(perm(
                "5.1.2",
                format!(
                    "Host or domain name not found. Name service error for name={domain} type=MX: Host not found"
                ),
            ));
        }
        Err(e) => {
            return Err(temp(
                "4.4.3",
                format!(
                    "Host or domain name not found. Name service error for name={domain} type=MX: Host not found, try again ({})",
                    e.0
                ),
            ));
        }
    };
    let mut mx: Vec<(u16, u64, String)> = records
        .into_iter()
        .filter_map(|r| match r {
            Record::Mx {
                preference,
                exchange,
            } => Some((preference, posthorn_sys::fsio::random_u64(), exchange)),
            _ => None,
        })
        .collect();
    order(cfg, domain, &mut mx)
}

/// order - sort by preference (ties at random), honour a null MX, and drop
/// ourselves and everything after us.
fn order(
    cfg: &Config,
    domain: &str,
    mx: &mut Vec<(u16, u64, String)>,
) -> Result<Vec<String>, Unroutable> {
    if mx.iter().any(|(_, _, x)| x.is_empty() || x == ".") {
        return Err(perm(
            "5.1.10",
            format!("Domain {domain} does not accept mail (nullMX)"),
        ));
    }
    mx.sort();
    let me = cfg.hostname.to_ascii_lowercase();
    if let Some(mine) = mx.iter().find(|(_, _, x)| *x == me).map(|(p, _, _)| *p) {
        mx.retain(|(p, _, _)| *p < mine);
        if mx.is_empty() {
            return Err(perm(
                "5.4.6",
                format!("mail for {domain} loops back to myself"),
            ));
        }
    }
    Ok(mx.iter().map(|(_, _, x)| x.clone()).collect())
}

/// addresses - the socket addresses of `host`: IPv4 first, then IPv6.
pub fn addresses(dns: &Resolver, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unroutable> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut out = Vec::new();
    let mut missing = 0;
    let mut fail = None;
    for t in [TYPE_A, TYPE_AAAA] {
        match dns.query(host, t) {
            Ok(Answer::Records(r)) => out.extend(r.into_iter().filter_map(|r| match r {
                Record::Addr(ip) => Some(SocketAddr::new(ip, port)),
                _ => None,
            })),
            Ok(_) => missing += 1,
            Err(e) => fail = Some(e.0),
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    match fail {
        Some(e) => Err(temp(
            "4.4.3",
            format!(
                "Host or domain name not found. Name service error for name={host} type=A: Host not found, try again ({e})"
            ),
        )),
        None if missing == 2 => Err(perm(
            "5.4.4",
            format!(
                "Host or domain name not found. Name service error for name={host} type=A: Host not found"
            ),
        )),
        None => Err(temp("4.4.3", format!("no address for {host}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_ties_null_mx_and_self() {
        let cfg = Config {
            hostname: "me.example".into(),
            ..Config::default()
        };
        let mut seen_first = std::collections::HashSet::new();
        for i in 0..64u64 {
            let mut mx = vec![
                (20, i * 7 % 5, "c".to_string()),
                (10, i % 3, "a".to_string()),
                (10, (i + 1) % 3, "b".to_string()),
            ];
            let o = order(&cfg, "d", &mut mx).unwrap();
            assert_eq!(o[2], "c");
            seen_first.insert(o[0].clone());
        }
        assert_eq!(seen_first.len(), 2, "equal preferences in random order");
        let e = order(&cfg, "d", &mut vec![(0, 0, String::new())]).unwrap_err();
        assert_eq!((e.temporary, e.dsn), (false, "5.1.10"));
        let o = order(
            &cfg,
            "d",
            &mut vec![
                (5, 0, "x".into()),
                (10, 0, "me.example".into()),
                (20, 0, "y".into()),
            ],
        )
        .unwrap();
        assert_eq!(o, vec!["x"]);
        let e = order(&cfg, "d", &mut vec![(10, 0, "me.example".into())]).unwrap_err();
        assert_eq!(e.dsn, "5.4.6");
    }
}
