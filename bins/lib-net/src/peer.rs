//! peer - who is on the other end of fd 0, for logs, Received: lines and
//! access rules: the socket itself (inetd, systemd Accept=yes), else the
//! environment a launcher set (tcpserver's TCPREMOTEIP, systemd's
//! REMOTE_ADDR), else a local pipe.

use std::net::{IpAddr, SocketAddr};

/// The client of this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address and port, None for a pipe.
    pub remote: Option<SocketAddr>,
    /// Our own address on the connection, when fd 0 is a socket.
    pub local: Option<SocketAddr>,
}

impl Peer {
    /// detect - look at fd 0, then the launcher's environment.
    pub fn detect() -> Peer {
        if let Some(p) = from_fd(0) {
            return p;
        }
        Peer {
            remote: from_env(|k| std::env::var(k).ok()),
            local: None,
        }
    }

    /// is_loopback - a pipe or a loopback address: the local machine.
    pub fn is_loopback(&self) -> bool {
        match self.remote {
            None => true,
            Some(a) => match a.ip() {
                IpAddr::V4(v) => v.is_loopback(),
                IpAddr::V6(v) => {
                    v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback())
                }
            },
        }
    }

    /// is_proxy - whether the other end is one of the `trusted` proxies,
    /// which name the real client in a PROXY header.
    pub fn is_proxy(&self, trusted: &[posthorn_mail::net::Net]) -> bool {
        self.remote
            .is_some_and(|a| trusted.iter().any(|n| n.contains(a.ip())))
    }

    /// log_name - `unknown[192.0.2.7]` as Postfix logs a client (no reverse
    /// lookup here), or `local` for a pipe.
    pub fn log_name(&self) -> String {
        match self.remote {
            Some(a) => format!("unknown[{}]", a.ip()),
            None => "local".to_string(),
        }
    }
}

/// from_fd - the peer of socket `fd`; None when it is not a socket.
fn from_fd(fd: std::os::fd::RawFd) -> Option<Peer> {
    use nix::sys::socket::{SockaddrLike, SockaddrStorage, getpeername, getsockname};
    let remote: SockaddrStorage = getpeername(fd).ok()?;
    let local: Option<SockaddrStorage> = getsockname(fd).ok();
    let conv = |s: &SockaddrStorage| -> Option<SocketAddr> {
        if let Some(v4) = s.as_sockaddr_in() {
            return Some(SocketAddr::from((v4.ip(), v4.port())));
        }
        if let Some(v6) = s.as_sockaddr_in6() {
            return Some(SocketAddr::from((v6.ip(), v6.port())));
        }
        let _ = s.family();
        None
    };
    Some(Peer {
        remote: conv(&remote),
        local: local.as_ref().and_then(conv),
    })
}

/// from_env - tcpserver's TCPREMOTEIP/TCPREMOTEPORT, then systemd's and
/// xinetd's REMOTE_ADDR/REMOTE_PORT.
fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<SocketAddr> {
    for (ip, port) in [
        ("TCPREMOTEIP", "TCPREMOTEPORT"),
        ("REMOTE_ADDR", "REMOTE_PORT"),
    ] {
        if let Some(a) = get(ip).and_then(|s| s.trim().parse::<IpAddr>().ok()) {
            let p = get(port)
                .and_then(|s| s.trim().parse::<u16>().ok())
                .unwrap_or(0);
            return Some(SocketAddr::new(a, p));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_fallbacks() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            from_env(env(&[
                ("TCPREMOTEIP", "192.0.2.7"),
                ("TCPREMOTEPORT", "4242")
            ])),
            Some("192.0.2.7:4242".parse().unwrap())
        );
        assert_eq!(
            from_env(env(&[
                ("REMOTE_ADDR", "2001:db8::1"),
                ("REMOTE_PORT", "25")
            ])),
            Some("[2001:db8::1]:25".parse().unwrap())
        );
        assert_eq!(from_env(env(&[("REMOTE_ADDR", "not an ip")])), None);
        assert_eq!(from_env(env(&[])), None);
    }

    #[test]
    fn loopback_and_names() {
        let p = Peer {
            remote: Some("127.0.0.1:1".parse().unwrap()),
            local: None,
        };
        assert!(p.is_loopback());
        assert_eq!(p.log_name(), "unknown[127.0.0.1]");
        let p = Peer {
            remote: Some("[::ffff:127.0.0.1]:1".parse().unwrap()),
            local: None,
        };
        assert!(p.is_loopback());
        let p = Peer {
            remote: Some("192.0.2.1:1".parse().unwrap()),
            local: None,
        };
        assert!(!p.is_loopback());
        let p = Peer {
            remote: None,
            local: None,
        };
        assert!(p.is_loopback());
        assert_eq!(p.log_name(), "local");
    }

    #[test]
    fn a_real_socket_on_fd_0_is_seen() {
        // A pipe (or a terminal) on fd 0 in the test runner is not a socket.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        use std::os::fd::AsRawFd;
        let p = from_fd(s.as_raw_fd()).unwrap();
        assert_eq!(p.remote, Some(c.local_addr().unwrap()));
        assert_eq!(p.local, Some(addr));
        // A pipe is not a socket.
        let (r, _w) = std::io::pipe().unwrap();
        assert!(from_fd(r.as_raw_fd()).is_none());
    }
}
