//! smtp - one delivery attempt at one server address: greeting, EHLO (HELO
//! when EHLO is refused), STARTTLS, AUTH, then MAIL, RCPT per recipient and
//! DATA, pipelined when the server offers PIPELINING.
//!
//! Each recipient gets its own outcome: a 4xx or 5xx at its RCPT touches
//! only it. What goes wrong with the connection or the server as a whole
//! (refused, greeting, TLS, a lost connection) is a host failure, and the
//! caller tries the next address for the recipients still open.
//!
//! Distrusts the server (see conn.rs) and its own input: addresses with
//! CR, LF or '<' '>' never reach the wire; DSN values are passed on only
//! when the server offers DSN.

use crate::conn::{Conn, IoFail, Reply};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 5321 §4.5.3.2 timeouts.
const T_GREETING: Duration = Duration::from_secs(300);
const T_MAIL: Duration = Duration::from_secs(300);
const T_RCPT: Duration = Duration::from_secs(300);
const T_DATA_INIT: Duration = Duration::from_secs(120);
const T_DATA_BLOCK: Duration = Duration::from_secs(180);
const T_DATA_END: Duration = Duration::from_secs(600);
const T_QUIT: Duration = Duration::from_secs(10);

/// One recipient with its DSN parameters.
#[derive(Debug, Clone)]
pub struct Rcpt {
    /// Its index in the list qrun gave.
    pub index: usize,
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// The message and what the transaction needs to know about it.
#[derive(Debug)]
pub struct Job {
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// Already encoded for DATA (data::encode).
    pub wire: Vec<u8>,
    pub eight_bit: bool,
    /// The sender asked for SMTPUTF8: pass it on where offered.
    pub smtputf8: bool,
    /// Only a server with SMTPUTF8 may take it: UTF-8 in an address, or
    /// in the header of a message sent with SMTPUTF8 (as Postfix decides).
    pub smtputf8_needed: bool,
}

/// How to talk to this destination.
#[derive(Clone)]
pub struct Policy {
    pub helo: String,
    /// TLS must succeed, with a verified certificate.
    pub tls_required: bool,
    /// TLS from the first octet (port 465), rather than STARTTLS.
    pub implicit_tls: bool,
    /// Skip STARTTLS (after a failed handshake on port 25).
    pub no_tls: bool,
    pub auth: Option<(String, String)>,
    pub connect_timeout: Duration,
    pub reply_timeout: Option<Duration>,
    pub verified: Option<Arc<rustls::ClientConfig>>,
    pub opportunistic: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of debug output.
        write!(
            f,
            "Policy(tls_required={}, implicit_tls={}, auth={})",
            self.tls_required,
            self.implicit_tls,
            if self.auth.is_some() {
                "[redacted]"
            } else {
                "none"
            }
        )
    }
}

impl Policy {
    /// t - the RFC value, or the configured `reply_timeout` in its place.
    fn t(&self, rfc: Duration) -> Duration {
        self.reply_timeout.unwrap_or(rfc)
    }
}

/// Where a recipient ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    /// Sent to a server that does not offer DSN: the NOTIFY duty stays here.
    Relayed,
    Deferred,
    Bounced,
}

/// The outcome of one recipient (or, as a host failure, of all those still open).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub dsn: String,
    /// For the log and the bounce's human part.
    pub text: String,
    /// The server's host name, when one was reached (DSN Remote-MTA).
    pub mta: String,
    /// The server's reply (DSN Diagnostic-Code: smtp; …), when there was one.
    pub diag: String,
    /// `name[ip]:port`, or "none".
    pub relay: String,
    /// Seconds spent on connection setup and on transmission.
    pub conn_secs: f64,
    pub xfer_secs: f64,
    /// Which transaction on its connection this was (Postfix's conn_use);
    /// 0 when no connection was made.
    pub conn_use: u32,
}

/// A connection left open after a finished transaction, for the next
/// message to the same server (RSET was answered 250).
#[derive(Debug)]
pub struct Open {
    c: Conn,
    ext: Ext,
    addr: SocketAddr,
    /// Transactions done on it so far.
    pub uses: u32,
}

impl Open {
    /// is_for - whether this connection goes to `name` at `addr`.
    pub fn is_for(&self, name: &str, addr: SocketAddr) -> bool {
        self.c.name == name && self.addr == addr
    }

    /// close - QUIT, politely and briefly.
    pub fn close(mut self) {
        let _ = self.c.send(b"QUIT\r\n", T_QUIT);
        let _ = self.c.read_reply(T_QUIT);
    }
}

/// What one attempt gave.
#[derive(Debug, Default)]
pub struct Attempt {
    /// Recipients finished (sent, deferred for themselves, or bounced).
    pub done: Vec<(usize, Outcome)>,
    /// A failure of the server as a whole, for every recipient not in `done`.
    pub host_fail: Option<Outcome>,
    /// The STARTTLS handshake failed: the caller may retry without TLS.
    pub tls_failed: bool,
    /// The connection, still good for another message.
    pub open: Option<Open>,
}

/// Server extensions from the EHLO reply.
#[derive(Debug, Default)]
struct Ext {
    pipelining: bool,
    starttls: bool,
    eightbit: bool,
    smtputf8: bool,
    dsn: bool,
    size_offered: bool,
    size: Option<u64>,
    auth: Vec<String>,
}

/// parse_ehlo - the keywords of an EHLO reply (the first line is the greeting).
fn parse_ehlo(r: &Reply) -> Ext {
    let mut e = Ext::default();
    for l in r.lines.iter().skip(1) {
        let mut w = l.split_whitespace();
        let kw = w.next().unwrap_or("").to_ascii_uppercase();
        match kw.as_str() {
            "PIPELINING" => e.pipelining = true,
            "STARTTLS" => e.starttls = true,
            "8BITMIME" => e.eightbit = true,
            "SMTPUTF8" => e.smtputf8 = true,
            "DSN" => e.dsn = true,
            "SIZE" => {
                e.size_offered = true;
                e.size = w.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
            }
            "AUTH" => e.auth = w.map(|m| m.to_ascii_uppercase()).collect(),
            _ => {}
        }
    }
    e
}

/// A running attempt: the connection and the clock.
struct Session<'a> {
    c: Conn,
    p: &'a Policy,
    started: Instant,
    /// When the connection setup (greeting, EHLO, TLS, AUTH) ended.
    setup_done: Option<Instant>,
    /// The transaction's number on this connection.
    uses: u32,
}

impl Session<'_> {
    fn times(&self) -> (f64, f64) {
        match self.setup_done {
            Some(s) => (
                s.duration_since(self.started).as_secs_f64(),
                s.elapsed().as_secs_f64(),
            ),
            None => (self.started.elapsed().as_secs_f64(), 0.0),
        }
    }

    /// outcome - an outcome that carries this server's name and clock.
    fn outcome(&self, status: Status, dsn: String, text: String, diag: String) -> Outcome {
        let (conn_secs, xfer_secs) = self.times();
        Outcome {
            status,
            dsn,
            text,
            mta: self.c.name.clone(),
            diag,
            relay: self.c.relay.clone(),
            conn_secs,
            xfer_secs,
            conn_use: self.uses,
        }
    }

    /// replied - the outcome a reply gives, with Postfix's wording.
    fn replied(&self, r: &Reply, after: &str) -> Outcome {
        let status = if r.is_ok() {
            Status::Sent
        } else if r.is_temp() {
            Status::Deferred
        } else {
            Status::Bounced
        };
        let text = if r.is_ok() {
            r.text()
        } else {
            format!(
                "host {} said: {} (in reply to {after})",
                self.c.host,
                r.text()
            )
        };
        self.outcome(status, r.dsn(), text, r.text())
    }

    /// io - the outcome of a read or write that failed while `doing`.
    fn io(&self, f: &IoFail, doing: &str) -> Outcome {
        let text = match f {
            IoFail::Timeout => format!("conversation with {} timed out while {doing}", self.c.host),
            IoFail::Lost(_) => format!("lost connection with {} while {doing}", self.c.host),
            IoFail::Garbage(why) => format!("bad reply from {} while {doing}: {why}", self.c.host),
        };
        let dsn = if matches!(f, IoFail::Garbage(_)) {
            "4.5.0"
        } else {
            "4.4.2"
        };
        self.outcome(Status::Deferred, dsn.into(), text, String::new())
    }

    fn cmd(&mut self, line: &str, t: Duration, doing: &str) -> Result<Reply, Outcome> {
        let mut b = line.as_bytes().to_vec();
        b.extend_from_slice(b"\r\n");
        self.c.send(&b, t).map_err(|f| self.io(&f, doing))?;
        self.c.read_reply(t).map_err(|f| self.io(&f, doing))
    }

    fn quit(&mut self) {
        let _ = self.c.send(b"QUIT\r\n", T_QUIT);
        let _ = self.c.read_reply(T_QUIT);
    }
}

/// clean_addr - an address safe to put between < and >.
fn clean_addr(a: &str) -> Option<&str> {
    (!a.bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == b'<' || b == b'>' || b == 0))
    .then_some(a)
}

/// xtext_ok - a DSN parameter value safe on the wire (xtext is printable ASCII, no space).
fn xtext_ok(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'=')
}

/// host_fail - an attempt that ended before any recipient was settled.
fn host_fail(o: Outcome) -> Attempt {
    Attempt {
        host_fail: Some(o),
        ..Attempt::default()
    }
}

/// attempt - try to hand the message for `rcpts` to the server at `addr`.
pub fn attempt(
    name: &str,
    addr: SocketAddr,
    job: &Job,
    p: &Policy,
    rcpts: &[Rcpt],
    reuse: Option<Open>,
) -> Attempt {
    let started = Instant::now();
    if let Some(o) = reuse {
        // Connection setup was paid for by an earlier message.
        let mut s = Session {
            c: o.c,
            p,
            started,
            setup_done: Some(started),
            uses: o.uses + 1,
        };
        let mut a = transaction(&mut s, &o.ext, job, rcpts);
        a.open = keep(s, o.ext, o.addr, o.uses + 1, &a);
        return a;
    }
    let c = match Conn::connect(name, addr, p.connect_timeout) {
        Ok(c) => c,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::TimedOut {
                "Connection timed out".to_string()
            } else {
                e.to_string()
            };
            return host_fail(Outcome {
                status: Status::Deferred,
                dsn: "4.4.1".into(),
                text: format!("connect to {name}[{}]:{}: {why}", addr.ip(), addr.port()),
                mta: String::new(),
                diag: String::new(),
                relay: format!("{name}[{}]:{}", addr.ip(), addr.port()),
                conn_secs: started.elapsed().as_secs_f64(),
                xfer_secs: 0.0,
                conn_use: 0,
            });
        }
    };
    let mut s = Session {
        c,
        p,
        started,
        setup_done: None,
        uses: 1,
    };
    if p.implicit_tls
        && let Err(o) = tls(&mut s, true)
    {
        return host_fail(o);
    }
    match s.c.read_reply(p.t(T_GREETING)) {
        Ok(r) if r.code == 220 => {}
        Ok(r) => {
            let mut o = s.replied(&r, "initial greeting");
            o.text = format!("host {} refused to talk to me: {}", s.c.host, r.text());
            s.quit();
            return host_fail(o);
        }
        Err(f) => return host_fail(s.io(&f, "receiving the initial server greeting")),
    }
    let mut ext = match hello(&mut s) {
        Ok(e) => e,
        Err(o) => return host_fail(o),
    };
    if !s.c.tls && !p.no_tls && (ext.starttls || p.tls_required) {
        if !ext.starttls {
            let o = s.outcome(
                Status::Deferred,
                "4.7.4".into(),
                format!("TLS is required, but was not offered by host {}", s.c.host),
                String::new(),
            );
            s.quit();
            return host_fail(o);
        }
        match s.cmd("STARTTLS", p.t(T_MAIL), "sending STARTTLS") {
            Ok(r) if r.code == 220 => {
                if let Err(o) = tls(&mut s, false) {
                    return Attempt {
                        host_fail: Some(o),
                        tls_failed: !p.tls_required,
                        ..Attempt::default()
                    };
                }
                ext = match hello(&mut s) {
                    Ok(e) => e,
                    Err(o) => return host_fail(o),
                };
            }
            Ok(r) if p.tls_required => {
                let mut o = s.replied(&r, "STARTTLS command");
                o.status = Status::Deferred;
                o.dsn = "4.7.4".into();
                s.quit();
                return host_fail(o);
            }
            // Offered but refused: go on in plaintext, as opportunistic TLS does.
            Ok(_) => {}
            Err(o) => return host_fail(o),
        }
    }
    if let Some((user, pass)) = &p.auth
        && let Err(o) = auth(&mut s, &ext, user, pass)
    {
        s.quit();
        return host_fail(o);
    }
    s.setup_done = Some(Instant::now());
    let mut a = transaction(&mut s, &ext, job, rcpts);
    a.open = keep(s, ext, addr, 1, &a);
    a
}

/// Most messages sent over one connection (Postfix's
/// smtp_connection_reuse_count_limit is unlimited; a bound limits harm).
const MAX_USES: u32 = 100;

/// keep - the connection for the next message, after an RSET the server
/// answered 250; otherwise QUIT and nothing.
fn keep(mut s: Session, ext: Ext, addr: SocketAddr, uses: u32, a: &Attempt) -> Option<Open> {
    if a.host_fail.is_some() || uses >= MAX_USES {
        s.quit();
        return None;
    }
    match s.cmd("RSET", s.p.t(T_MAIL), "sending RSET") {
        Ok(r) if r.is_ok() => Some(Open {
            c: s.c,
            ext,
            addr,
            uses,
        }),
        _ => {
            s.quit();
            None
        }
    }
}

/// tls - the TLS handshake (implicit or after STARTTLS).
fn tls(s: &mut Session, implicit: bool) -> Result<(), Outcome> {
    let cfg = if s.p.tls_required {
        s.p.verified.clone()
    } else {
        s.p.opportunistic.clone()
    };
    let Some(cfg) = cfg else {
        return Err(s.outcome(
            Status::Deferred,
            "4.7.5".into(),
            "TLS is not available: no usable TLS configuration (see the log)".into(),
            String::new(),
        ));
    };
    let t = s.p.t(T_GREETING).min(Duration::from_secs(60));
    s.c.start_tls(cfg, t).map_err(|e| {
        let how = if implicit { "TLS" } else { "STARTTLS" };
        s.outcome(
            Status::Deferred,
            "4.7.5".into(),
            format!("{how} handshake with {} failed: {e}", s.c.host),
            String::new(),
        )
    })
}

/// hello - EHLO, or HELO when the server does not know EHLO.
fn hello(s: &mut Session) -> Result<Ext, Outcome> {
    let helo = s.p.helo.clone();
    let r = s.cmd(
        &format!("EHLO {helo}"),
        s.p.t(T_MAIL),
        "performing the EHLO handshake",
    )?;
    if r.is_ok() {
        return Ok(parse_ehlo(&r));
    }
    if r.is_temp() {
        return Err(s.replied(&r, "EHLO command"));
    }
    let r = s.cmd(
        &format!("HELO {helo}"),
        s.p.t(T_MAIL),
        "performing the HELO handshake",
    )?;
    if r.is_ok() {
        Ok(Ext::default())
    } else {
        Err(s.replied(&r, "HELO command"))
    }
}

/// auth - AUTH PLAIN, else LOGIN; only ever inside TLS.
fn auth(s: &mut Session, ext: &Ext, user: &str, pass: &str) -> Result<(), Outcome> {
    use base64::Engine;
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    let fail = |s: &Session, text: String, diag: String| {
        s.outcome(Status::Deferred, "4.7.0".into(), text, diag)
    };
    if !s.c.tls {
        return Err(fail(
            s,
            format!("will not send a password to {} without TLS", s.c.host),
            String::new(),
        ));
    }
    let t = s.p.t(T_MAIL);
    let doing = "performing SASL authentication";
    let r = if ext.auth.iter().any(|m| m == "PLAIN") {
        let cred = b64(format!("\0{user}\0{pass}").as_bytes());
        let r = s.cmd(&format!("AUTH PLAIN {cred}"), t, doing)?;
        if r.code == 334 {
            s.cmd(&cred, t, doing)?
        } else {
            r
        }
    } else if ext.auth.iter().any(|m| m == "LOGIN") {
        let r = s.cmd("AUTH LOGIN", t, doing)?;
        let r = if r.code == 334 {
            s.cmd(&b64(user.as_bytes()), t, doing)?
        } else {
            r
        };
        if r.code == 334 {
            s.cmd(&b64(pass.as_bytes()), t, doing)?
        } else {
            r
        }
    } else {
        return Err(fail(
            s,
            format!(
                "host {} offers no AUTH mechanism we know (PLAIN, LOGIN)",
                s.c.host
            ),
            String::new(),
        ));
    };
    if r.code == 235 {
        Ok(())
    } else {
        // A refused login defers (Postfix's smtp_sasl_auth_soft_bounce): a
        // wrong password must not bounce the queue.
        Err(fail(
            s,
            format!(
                "SASL authentication failed; server {} said: {}",
                s.c.host,
                r.text()
            ),
            r.text(),
        ))
    }
}

/// transaction - MAIL, RCPT for each recipient, DATA; per-recipient outcomes.
fn transaction(s: &mut Session, ext: &Ext, job: &Job, rcpts: &[Rcpt]) -> Attempt {
    let size = job.wire.len() as u64;
    if let Some(limit) = ext.size
        && size > limit
    {
        return host_fail(s.outcome(
            Status::Bounced,
            "5.3.4".into(),
            format!(
                "message size {size} exceeds size limit {limit} of server {}",
                s.c.host
            ),
            String::new(),
        ));
    }
    if job.smtputf8_needed && !ext.smtputf8 {
        return host_fail(s.outcome(
            Status::Bounced,
            "5.6.7".into(),
            format!(
                "SMTPUTF8 is required, but was not offered by host {}",
                s.c.host
            ),
            String::new(),
        ));
    }
    // An 8-bit message to a server without 8BITMIME is deferred, not
    // converted: see remote(8).
    if job.eight_bit && !ext.eightbit {
        return host_fail(s.outcome(
            Status::Deferred,
            "4.6.3".into(),
            format!(
                "the message has 8-bit content, but host {} does not offer 8BITMIME (not converted)",
                s.c.host
            ),
            String::new(),
        ));
    }
    let Some(sender) = clean_addr(&job.sender) else {
        return host_fail(s.outcome(
            Status::Bounced,
            "5.1.7".into(),
            "bad sender address".into(),
            String::new(),
        ));
    };
    let mut mail = format!("MAIL FROM:<{sender}>");
    if ext.size_offered {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if ext.eightbit && job.eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if (job.smtputf8 || job.smtputf8_needed) && ext.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    if ext.dsn {
        if let Some(r) = job.ret.as_deref().filter(|r| matches!(*r, "FULL" | "HDRS")) {
            mail.push_str(&format!(" RET={r}"));
        }
        if let Some(e) = job.envid.as_deref().filter(|e| xtext_ok(e)) {
            mail.push_str(&format!(" ENVID={e}"));
        }
    }
    let mut done = Vec::new();
    let mut lines: Vec<(Option<usize>, String)> = vec![(None, mail)];
    for r in rcpts {
        let Some(a) = clean_addr(&r.address) else {
            done.push((
                r.index,
                s.outcome(
                    Status::Bounced,
                    "5.1.3".into(),
                    "bad recipient address".into(),
                    String::new(),
                ),
            ));
            continue;
        };
        let mut l = format!("RCPT TO:<{a}>");
        if ext.dsn {
            if let Some(n) = r.notify.as_deref().filter(|n| xtext_ok(n)) {
                l.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = r.orcpt.as_deref().filter(|o| xtext_ok(o)) {
                l.push_str(&format!(" ORCPT={o}"));
            }
        }
        lines.push((Some(r.index), l));
    }
    let to_send: Vec<usize> = lines.iter().filter_map(|(i, _)| *i).collect();
    if to_send.is_empty() {
        return Attempt {
            done,
            ..Attempt::default()
        };
    }
    let mut accepted: Vec<usize> = Vec::new();
    let p = s.p;
    if ext.pipelining {
        // One write: MAIL, every RCPT, DATA (RFC 2920 §3.1); then the replies in order.
        let mut batch = String::new();
        for (_, l) in &lines {
            batch.push_str(l);
            batch.push_str("\r\n");
        }
        batch.push_str("DATA\r\n");
        if let Err(f) = s.c.send(batch.as_bytes(), p.t(T_MAIL)) {
            return Attempt {
                done,
                host_fail: Some(s.io(&f, "sending MAIL FROM")),
                ..Attempt::default()
            };
        }
    }
    for (i, l) in &lines {
        let doing = if i.is_none() { "MAIL FROM" } else { "RCPT TO" };
        let t = p.t(if i.is_none() { T_MAIL } else { T_RCPT });
        let r = if ext.pipelining {
            s.c.read_reply(t)
                .map_err(|f| s.io(&f, &format!("sending {doing}")))
        } else {
            s.cmd(l, t, &format!("sending {doing}"))
        };
        let r = match r {
            Ok(r) => r,
            Err(o) => {
                return Attempt {
                    done,
                    host_fail: Some(o),
                    ..Attempt::default()
                };
            }
        };
        match i {
            None if !r.is_ok() => {
                // The sender was refused: every recipient shares the answer.
                let o = s.replied(&r, "MAIL FROM command");
                for idx in &to_send {
                    done.push((*idx, o.clone()));
                }
                return Attempt {
                    done,
                    ..Attempt::default()
                };
            }
            None => {}
            Some(idx) if r.is_ok() => accepted.push(*idx),
            Some(idx) => done.push((*idx, s.replied(&r, "RCPT TO command"))),
        }
    }
    let data = if ext.pipelining {
        s.c.read_reply(p.t(T_DATA_INIT))
            .map_err(|f| s.io(&f, "sending DATA command"))
    } else if accepted.is_empty() {
        return Attempt {
            done,
            ..Attempt::default()
        };
    } else {
        s.cmd("DATA", p.t(T_DATA_INIT), "sending DATA command")
    };
    let data = match data {
        Ok(r) => r,
        Err(o) => {
            return Attempt {
                done,
                host_fail: Some(o),
                ..Attempt::default()
            };
        }
    };
    if data.code != 354 {
        if !accepted.is_empty() {
            let o = s.replied(&data, "DATA command");
            for idx in &accepted {
                done.push((*idx, o.clone()));
            }
        }
        return Attempt {
            done,
            ..Attempt::default()
        };
    }
    if accepted.is_empty() {
        // A server that said 354 with no recipient: end the empty message.
        let _ = s.c.send(b".\r\n", p.t(T_DATA_BLOCK));
        let _ = s.c.read_reply(p.t(T_DATA_END));
        return Attempt {
            done,
            ..Attempt::default()
        };
    }
    if let Err(f) = s.c.send(&job.wire, p.t(T_DATA_BLOCK)) {
        return Attempt {
            done,
            host_fail: Some(s.io(&f, "sending message body")),
            ..Attempt::default()
        };
    }
    match s.c.read_reply(p.t(T_DATA_END)) {
        Ok(r) => {
            let mut o = s.replied(&r, "end of DATA command");
            if o.status == Status::Sent && !ext.dsn {
                o.status = Status::Relayed;
            }
            for idx in &accepted {
                done.push((*idx, o.clone()));
            }
            Attempt {
                done,
                ..Attempt::default()
            }
        }
        Err(f) => Attempt {
            done,
            host_fail: Some(s.io(
                &f,
                "sending end of data -- message may be sent more than once",
            )),
            ..Attempt::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_keywords() {
        let r = Reply {
            code: 250,
            lines: [
                "mx hello",
                "PIPELINING",
                "SIZE 1000",
                "8BITMIME",
                "DSN",
                "AUTH PLAIN login",
                "STARTTLS",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        };
        let e = parse_ehlo(&r);
        assert!(e.pipelining && e.eightbit && e.dsn && e.starttls && !e.smtputf8);
        assert_eq!(e.size, Some(1000));
        assert_eq!(e.auth, vec!["PLAIN", "LOGIN"]);
        assert_eq!(clean_addr("a@b\r\nRSET"), None);
        assert!(xtext_ok("rfc822;a+2Bb@c") && !xtext_ok("a b"));
    }
}
