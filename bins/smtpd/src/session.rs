//! session - one SMTP session (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//! ENHANCEDSTATUSCODES, SMTPUTF8, DSN, CHUNKING, STARTTLS and AUTH) on the
//! connection in `Wire`, from greeting to close.
//!
//! The relay rule lives in `rcpt`: a recipient in a domain we do not serve
//! is taken only from an authenticated (or local) client, and one in a
//! domain we serve only if it exists (an alias, a user, postmaster), so
//! nothing is accepted here that would bounce later. Message octets go
//! through body.rs to enqueue (queue.rs); `250` after the data is sent only
//! once enqueue has made the message durable.

use crate::body::{Body, Fault, MAX_TEXT_LINE};
use crate::command::{self, Bad, Command, MailParams, Path, RcptParams};
use crate::mailauth::{self, SpfPair, Verdict};
use crate::queue::{Queued, Refused};
use posthorn_auth::checker::Checker;
use posthorn_auth::request::{Answer, Request, Service};
use posthorn_auth::sasl::{self, Exchange, Mechanism, Step};
use posthorn_mail::Config;
use posthorn_mail::aliases::Aliases;
use posthorn_net::peer::Peer;
use posthorn_net::wire::{Ending, Line, Wire};
use posthorn_spool::envelope::{Envelope, Recipient};
use posthorn_sys::{info, warning};
use rustls::ServerConfig;
use std::io::Write;
use std::sync::Arc;

/// Longest command line, CRLF included (RFC 5321 4.5.3.1.4: 512).
pub const MAX_COMMAND: usize = 512;

/// Longest SASL response line (RFC 4954 4: 12288 octets).
const MAX_SASL_LINE: usize = 12288;

/// What kind of service this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail for local recipients only.
    Mx,
    /// Ports 587 and 465: AUTH before MAIL, then relaying.
    Submission,
    /// `sendmail -bs`: the calling user on a pipe, trusted as sendmail is.
    /// The caller's uid, named in the Received: field.
    Local { uid: u32 },
}

/// What happens after a command.
enum Next {
    Go,
    Close,
}

/// The mail transaction under way.
struct Txn {
    sender: Path,
    params: MailParams,
    rcpts: Vec<(Path, RcptParams)>,
    /// BDAT chunks so far: the message on its way to the queue, or None
    /// when the queue refused it (the chunks are still read).
    bdat: Option<Chunks>,
    /// SPF's results, when the client is checked (mailauth.rs).
    spf: Option<SpfPair>,
}

struct Chunks {
    queued: Option<Queued>,
    body: Body,
    refused: Option<Refused>,
}

/// Per-command counts for the disconnect line: (accepted, total).
#[derive(Default)]
struct Counts(Vec<(&'static str, u32, u32)>);

impl Counts {
    fn add(&mut self, name: &'static str, ok: bool) {
        match self.0.iter_mut().find(|c| c.0 == name) {
            Some(c) => {
                c.1 += u32::from(ok);
                c.2 += 1;
            }
            None => self.0.push((name, u32::from(ok), 1)),
        }
    }

    /// line - ` ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6`, as Postfix.
    fn line(&self) -> String {
        let mut s = String::new();
        let (mut ok, mut all) = (0, 0);
        for (n, o, t) in &self.0 {
            ok += o;
            all += t;
            if o == t {
                s.push_str(&format!(" {n}={t}"));
            } else {
                s.push_str(&format!(" {n}={o}/{t}"));
            }
        }
        if ok == all {
            s.push_str(&format!(" commands={all}"));
        } else {
            s.push_str(&format!(" commands={ok}/{all}"));
        }
        s
    }
}

/// The session's state.
pub struct Session<'a> {
    cfg: &'a Config,
    peer: &'a Peer,
    mode: Mode,
    tls: Option<Arc<ServerConfig>>,
    wire: Wire,
    helo: Option<String>,
    esmtp: bool,
    /// The authenticated user and how.
    auth: Option<(String, &'static str)>,
    txn: Option<Txn>,
    errors: u32,
    /// The way to the password check (submission mode only).
    checker: Option<Checker>,
    counts: Counts,
    /// The last command's name, for "lost connection after X".
    last: &'static str,
    aliases: Option<Aliases>,
    /// SPF, DKIM and DMARC for this client: MX mode, not from this host.
    mail_checks: Option<mailauth::Checker>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("mode", &self.mode).finish()
    }
}

impl<'a> Session<'a> {
    /// new - a session on `wire`.
    pub fn new(
        cfg: &'a Config,
        peer: &'a Peer,
        mode: Mode,
        tls: Option<Arc<ServerConfig>>,
        wire: Wire,
        checker: Option<Checker>,
    ) -> Session<'a> {
        let checked = mode == Mode::Mx && cfg.mailauth.checks && !peer.is_loopback();
        Session {
            cfg,
            peer,
            mode,
            tls,
            wire,
            helo: None,
            esmtp: false,
            auth: None,
            txn: None,
            errors: 0,
            checker,
            counts: Counts::default(),
            last: "CONNECT",
            aliases: None,
            mail_checks: checked.then(|| mailauth::Checker::new(cfg)),
        }
    }

    /// client - the client as logged: `unknown[192.0.2.7]`, or `local`.
    fn client(&self) -> String {
        self.peer.log_name()
    }

    /// reply - queue one reply line (sent before we next wait).
    fn reply(&mut self, code: u16, text: &str) {
        if code >= 400 {
            self.errors += 1;
        }
        self.wire.queue(format!("{code} {text}\r\n").as_bytes());
    }

    /// run - the whole session. Returns when it is over.
    pub fn run(mut self) {
        let greeting = format!("220 {} ESMTP Posthorn", self.cfg.hostname);
        self.wire.queue(greeting.as_bytes());
        self.wire.queue(b"\r\n");
        loop {
            if self.errors >= self.cfg.smtpd.max_errors {
                let t = format!("4.7.0 {} Error: too many errors", self.cfg.hostname);
                self.reply(421, &t);
                info!("too many errors after {} from {}", self.last, self.client());
                break;
            }
            let line = match self.read_line() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(()) => break,
            };
            match self.command(line) {
                Next::Go => {}
                Next::Close => break,
            }
        }
        self.wire.close();
        info!("disconnect from {}{}", self.client(), self.counts.line());
    }

    /// read_line - the next line, or None when the client went away or
    /// took too long (both logged, the latter answered with 421).
    fn read_line(&mut self) -> Result<Option<Line>, ()> {
        match self.wire.read_line() {
            Ok(Some(l)) => Ok(Some(l)),
            Ok(None) => {
                if self.last != "QUIT" {
                    info!("lost connection after {} from {}", self.last, self.client());
                }
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                info!("timeout after {} from {}", self.last, self.client());
                let t = format!("4.4.2 {} Error: timeout exceeded", self.cfg.hostname);
                self.reply(421, &t);
                Err(())
            }
            Err(_) => {
                info!("lost connection after {} from {}", self.last, self.client());
                Err(())
            }
        }
    }

    /// command - one command line.
    fn command(&mut self, line: Line) -> Next {
        if line.ending == Ending::Lf || line.text.contains(&b'\r') {
            self.counts.add("unknown", false);
            self.reply(500, "5.5.2 Error: bare <CR> or <LF> received");
            return Next::Go;
        }
        if line.too_long(MAX_COMMAND - 2) {
            self.counts.add("unknown", false);
            self.reply(500, "5.5.2 Error: command line too long");
            return Next::Go;
        }
        let cmd = match command::parse(&line.text) {
            Ok(c) => c,
            Err(Bad::Unknown) => {
                self.counts.add("unknown", false);
                self.last = "UNKNOWN";
                self.reply(500, "5.5.2 Error: command not recognized");
                return Next::Go;
            }
            Err(e) => {
                let name = verb_name(&line.text);
                self.counts.add(name, false);
                self.last = verb_upper(name);
                let (code, text) = match e {
                    Bad::Syntax(why) => (501, format!("5.5.4 Syntax: {why}")),
                    Bad::Address(why) if name == "mail" => {
                        (553, format!("5.1.7 Bad sender address syntax: {why}"))
                    }
                    Bad::Address(why) => {
                        (553, format!("5.1.3 Bad recipient address syntax: {why}"))
                    }
                    Bad::Param(why) => (555, format!("5.5.4 {why}")),
                    Bad::Unknown => (500, "5.5.2 Error: command not recognized".to_string()),
                };
                self.reply(code, &text);
                return Next::Go;
            }
        };
        let name = cmd.name();
        self.last = match &cmd {
            Command::StartTls => "STARTTLS",
            c => verb_upper(c.name()),
        };
        if self.pipelined_too_early(&cmd) {
            info!(
                "improper command pipelining after {} from {}",
                self.last,
                self.client()
            );
            self.counts.add(name, false);
            self.reply(554, "5.5.0 Error: SMTP protocol synchronization");
            return Next::Close;
        }
        let errors = self.errors;
        let next = match cmd {
            Command::Helo(h) => self.helo(h, false),
            Command::Ehlo(h) => self.helo(h, true),
            Command::Mail(p, m) => self.mail(p, m),
            Command::Rcpt(p, r) => self.rcpt(p, r),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset();
                self.reply(250, "2.0.0 Ok");
                Next::Go
            }
            Command::Noop => {
                self.reply(250, "2.0.0 Ok");
                Next::Go
            }
            Command::Quit => {
                self.reply(221, "2.0.0 Bye");
                self.counts.add(name, true);
                return Next::Close;
            }
            Command::Vrfy => {
                self.reply(
                    252,
                    "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                );
                Next::Go
            }
            Command::Expn => {
                self.reply(502, "5.5.1 Error: EXPN is not supported");
                Next::Go
            }
            Command::Help => {
                self.reply(
                    214,
                    "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
                );
                Next::Go
            }
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.authenticate(&mechanism, initial),
        };
        self.counts.add(name, self.errors == errors);
        next
    }

    /// pipelined_too_early - RFC 2920: a client may send ahead only up to
    /// a command whose reply it must wait for (EHLO, HELO, DATA, STARTTLS,
    /// AUTH, NOOP, VRFY, EXPN, QUIT), and a client that did not say EHLO
    /// (so saw no PIPELINING) may not send ahead at all. Like Postfix's
    /// smtpd_forbid_unauth_pipelining: for clients that have not logged in.
    /// After STARTTLS any plaintext sent ahead is refused in `starttls`.
    /// A pipe (no network client: a script, a test) is exempt.
    fn pipelined_too_early(&self, cmd: &Command) -> bool {
        if self.auth.is_some()
            || matches!(self.mode, Mode::Local { .. })
            || self.peer.remote.is_none()
        {
            return false;
        }
        if !self.wire.pending_input() {
            return false;
        }
        let sync = matches!(
            cmd,
            Command::Ehlo(_)
                | Command::Helo(_)
                | Command::Data
                | Command::Auth { .. }
                | Command::Noop
                | Command::Vrfy
                | Command::Expn
        );
        // BDAT's chunk follows it by design.
        sync || (!self.esmtp
            && !matches!(
                cmd,
                Command::Bdat { .. } | Command::StartTls | Command::Quit
            ))
    }

    /// reset - drop the transaction (RSET, HELO, EHLO, STARTTLS).
    fn reset(&mut self) {
        if let Some(t) = self.txn.take()
            && let Some(c) = t.bdat
            && let Some(q) = c.queued
        {
            q.abort();
        }
    }

    fn helo(&mut self, name: String, esmtp: bool) -> Next {
        self.reset();
        self.helo = Some(name);
        self.esmtp = esmtp;
        if !esmtp {
            let t = self.cfg.hostname.clone();
            self.reply(250, &t);
            return Next::Go;
        }
        let mut lines = vec![
            self.cfg.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.message_size_limit),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
            "DSN".into(),
            "CHUNKING".into(),
        ];
        if self.tls.is_some() && !self.wire.is_tls() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            self.wire.queue(format!("250{sep}{l}\r\n").as_bytes());
        }
        Next::Go
    }

    /// auth_offered - submission only, and only where a password may be
    /// sent: under TLS, from loopback, or where the config allows it.
    fn auth_offered(&self) -> bool {
        self.mode == Mode::Submission
            && self.auth.is_none()
            && (self.wire.is_tls() || self.peer.is_loopback() || self.cfg.auth_allow_plaintext)
    }

    fn mail(&mut self, sender: Path, params: MailParams) -> Next {
        if self.helo.is_none() {
            self.reply(503, "5.5.1 Error: send HELO/EHLO first");
            return Next::Go;
        }
        if self.txn.is_some() {
            self.reply(503, "5.5.1 Error: nested MAIL command");
            return Next::Go;
        }
        if self.mode == Mode::Submission && self.auth.is_none() {
            self.reply(530, "5.7.0 Authentication required");
            return Next::Go;
        }
        if params.size.is_some_and(|s| s > self.cfg.message_size_limit) {
            self.reply(552, "5.3.4 Message size exceeds fixed limit");
            return Next::Go;
        }
        if !sender.is_ascii() && !params.smtputf8 {
            self.reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8");
            return Next::Go;
        }
        if (params.smtputf8 || params.body.is_some()) && !self.esmtp {
            self.reply(555, "5.5.4 Parameters need EHLO");
            return Next::Go;
        }
        if let Some((user, _)) = &self.auth
            && self.cfg.smtpd.sender_check
            && !sender.is_null()
            && !self.owns(user, &sender)
        {
            let t = format!("5.7.1 <{sender}>: Sender address rejected: not owned by user {user}");
            self.reject("MAIL", 553, &t, &sender, None);
            return Next::Go;
        }
        let spf = match (&self.mail_checks, self.peer.remote) {
            (Some(c), Some(addr)) => {
                let helo = self.helo.clone().unwrap_or_default();
                Some(c.spf(self.cfg, addr.ip(), &sender.to_string(), &helo))
            }
            _ => None,
        };
        if let Some(t) = spf
            .as_ref()
            .and_then(|p| mailauth::spf_refusal(self.cfg, p))
        {
            self.reject("MAIL", 550, &t, &sender, None);
            return Next::Go;
        }
        self.txn = Some(Txn {
            sender,
            params,
            rcpts: Vec::new(),
            bdat: None,
            spf,
        });
        self.reply(250, "2.1.0 Ok");
        Next::Go
    }

    /// owns - whether logged-in `user` may send as `sender`: its own name
    /// (with any +detail) in one of our domains, or exactly the address
    /// it logged in with.
    fn owns(&self, user: &str, sender: &Path) -> bool {
        let addr = sender.to_string();
        if addr.eq_ignore_ascii_case(user) {
            return true;
        }
        let (ulocal, udomain) = posthorn_mail::address::split(user);
        let lower = sender.local.to_ascii_lowercase();
        let (base, _) = posthorn_mail::address::split_detail(&lower);
        let domain_ok = match udomain {
            Some(d) => sender.domain.eq_ignore_ascii_case(d),
            None => self.cfg.is_local_domain(&sender.domain),
        };
        domain_ok && base.eq_ignore_ascii_case(ulocal)
    }

    /// reject - a refused MAIL or RCPT, logged in Postfix's shape for
    /// fail2ban and pflogsumm.
    fn reject(&mut self, what: &str, code: u16, text: &str, from: &Path, to: Option<&Path>) {
        let proto = if self.esmtp { "ESMTP" } else { "SMTP" };
        let to = to.map(|t| format!(" to=<{t}>")).unwrap_or_default();
        info!(
            "NOQUEUE: reject: {what} from {}: {code} {text}; from=<{from}>{to} proto={proto} helo=<{}>",
            self.client(),
            self.helo.as_deref().unwrap_or("")
        );
        self.reply(code, text);
    }

    fn rcpt(&mut self, rcpt: Path, params: RcptParams) -> Next {
        let Some(txn) = &self.txn else {
            self.reply(503, "5.5.1 Error: need MAIL command");
            return Next::Go;
        };
        if txn.bdat.is_some() {
            self.reply(503, "5.5.1 Error: RCPT after BDAT");
            return Next::Go;
        }
        if txn.rcpts.len() >= self.cfg.smtpd.max_recipients {
            self.reply(452, "4.5.3 Error: too many recipients");
            return Next::Go;
        }
        if !rcpt.is_ascii() && !txn.params.smtputf8 {
            self.reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8");
            return Next::Go;
        }
        let sender = txn.sender.clone();
        let trusted = self.auth.is_some() || matches!(self.mode, Mode::Local { .. });
        let rcpt = if rcpt.domain.is_empty() {
            // RCPT TO:<postmaster> (RFC 5321 4.1.1.3).
            Path {
                local: rcpt.local,
                domain: self.cfg.hostname.to_ascii_lowercase(),
            }
        } else {
            rcpt
        };
        let local = !rcpt.domain.starts_with('[') && self.cfg.is_local_domain(&rcpt.domain);
        if !local && !trusted {
            let t = format!("5.7.1 <{rcpt}>: Relay access denied");
            self.reject("RCPT", 554, &t, &sender, Some(&rcpt));
            return Next::Go;
        }
        if local {
            match self.exists(&rcpt) {
                Ok(true) => {}
                Ok(false) => {
                    let t = format!(
                        "5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table"
                    );
                    self.reject("RCPT", 550, &t, &sender, Some(&rcpt));
                    return Next::Go;
                }
                Err(why) => {
                    warning!("recipient lookup for <{rcpt}>: {why}");
                    let t = format!("4.3.0 <{rcpt}>: Temporary lookup failure");
                    self.reject("RCPT", 451, &t, &sender, Some(&rcpt));
                    return Next::Go;
                }
            }
        }
        if let Some(t) = self.txn.as_mut() {
            t.rcpts.push((rcpt, params));
        }
        self.reply(250, "2.1.5 Ok");
        Next::Go
    }

    /// exists - whether a recipient in one of our domains can be delivered
    /// to: postmaster, an alias, a user (users file or system account).
    /// Quoted local parts, `%` and `!` routing are never aliases or users,
    /// so `"a@b"@us`, `a%b@us` and `b!a@us` are unknown here.
    fn exists(&mut self, rcpt: &Path) -> Result<bool, String> {
        let lname = rcpt.local.to_ascii_lowercase();
        if lname == "postmaster" {
            return Ok(true);
        }
        if rcpt.is_quoted() || lname.contains(['%', '!', '/', '\\']) {
            return Ok(false);
        }
        let (base, _) = posthorn_mail::address::split_detail(&lname);
        if self.aliases.is_none()
            && let Some(p) = &self.cfg.aliases
        {
            self.aliases = Some(match Aliases::load(p) {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Aliases::default(),
                Err(e) => return Err(format!("{}: {e}", p.display())),
            });
        }
        if let Some(a) = &self.aliases
            && (a.get(&lname).is_some() || a.get(base).is_some())
        {
            return Ok(true);
        }
        posthorn_mail::users::lookup(self.cfg, base, Some(&rcpt.domain))
            .map(|u| u.is_some())
            .map_err(|e| e.to_string())
    }

    /// envelope - the transaction as enqueue's envelope.
    fn envelope(&self, txn: &Txn) -> Envelope {
        Envelope {
            sender: txn.sender.to_string(),
            recipients: txn
                .rcpts
                .iter()
                .map(|(p, r)| Recipient {
                    address: p.to_string(),
                    notify: r.notify.clone(),
                    orcpt: r.orcpt.clone(),
                })
                .collect(),
            ret: txn.params.ret.clone(),
            envid: txn.params.envid.clone(),
            body: txn.params.body.clone(),
            smtputf8: txn.params.smtputf8,
            // Mail from a stranger is never signed; mail from a logged-in
            // user or sendmail -bs is (qrun's dkim.rs).
            external: self.mode == Mode::Mx && self.auth.is_none(),
        }
    }

    /// protocol - the Received: `with` value (RFC 3848, RFC 6531).
    fn protocol(&self, smtputf8: bool) -> String {
        let mut p = String::from(match (smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        });
        if self.esmtp || smtputf8 {
            if self.wire.is_tls() {
                p.push('S');
            }
            if self.auth.is_some() {
                p.push('A');
            }
        }
        p
    }

    /// received - our trace field (RFC 5321 4.4), LF line ends as queued.
    fn received(&self, txn: &Txn, id: &str) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let from = match (&self.mode, self.peer.remote) {
            (Mode::Local { uid, .. }, _) => format!("{helo} (uid {uid})"),
            (_, Some(a)) => format!("{helo} (unknown [{}])", a.ip()),
            (_, None) => format!("{helo} (local)"),
        };
        let tls = match (self.wire.tls_version(), self.wire.tls_cipher()) {
            (Some(v), Some(c)) => format!("\n\t(using {v} with cipher {c})"),
            _ => String::new(),
        };
        let for_ = match txn.rcpts.as_slice() {
            [(one, _)] => format!("\n\tfor <{one}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {from}{tls}\n\tby {} (Posthorn) with {} id {id}{for_};\n\t{}\n",
            self.cfg.hostname,
            self.protocol(txn.params.smtputf8),
            posthorn_mail::date::now_rfc5322()
        )
    }

    /// open_queue - start enqueue for the transaction and write our
    /// Received: field; logs the client with the queue ID.
    fn open_queue(&self, txn: &Txn) -> Result<Queued, Refused> {
        let env = self.envelope(txn);
        // Our Received: field goes on top; in a `sendmail -bs` session, run
        // by and as the caller, enqueue adds its own as well.
        let own_trace = !matches!(self.mode, Mode::Local { .. });
        let mut q = Queued::start(self.cfg, &env, own_trace)?;
        let sasl = match &self.auth {
            Some((u, m)) => format!(", sasl_method={m}, sasl_username={u}"),
            None => String::new(),
        };
        info!("{}: client={}{sasl}", q.id, self.client());
        // Checked mail waits whole for its verdict, with
        // Authentication-Results to go on top of our Received:; other MX
        // mail waits only for its header, to lose the forged fields that
        // claim our name (RFC 8601 5), then streams (finish_message).
        if txn.spf.is_some() {
            q.hold();
        } else if self.mode == Mode::Mx {
            q.hold_header(&self.cfg.hostname);
        }
        let r = self.received(txn, &q.id);
        if let Err(e) = q.write(r.as_bytes()) {
            q.abort();
            return Err(Refused::Temporary(format!("writing to enqueue: {e}")));
        }
        q.mark_message();
        Ok(q)
    }

    /// ready_for_data - DATA or BDAT needs MAIL and a recipient.
    fn ready_for_data(&mut self) -> bool {
        match &self.txn {
            None => {
                self.reply(503, "5.5.1 Error: need RCPT command");
                false
            }
            Some(t) if t.rcpts.is_empty() => {
                self.reply(554, "5.5.1 Error: no valid recipients");
                false
            }
            Some(_) => true,
        }
    }

    fn data(&mut self) -> Next {
        if !self.ready_for_data() {
            return Next::Go;
        }
        let Some(txn) = self.txn.take() else {
            return Next::Go;
        };
        if txn.bdat.is_some() {
            self.reply(503, "5.5.1 Error: DATA after BDAT");
            self.txn = Some(txn);
            return Next::Go;
        }
        let mut queued = match self.open_queue(&txn) {
            Ok(q) => q,
            Err(r) => {
                self.refused(r);
                return Next::Go;
            }
        };
        self.wire.queue(b"354 End data with <CR><LF>.<CR><LF>\r\n");
        self.wire.set_max_line(MAX_TEXT_LINE);
        let mut body = Body::new(self.cfg.message_size_limit);
        let mut out = Vec::with_capacity(80 * 1024);
        let mut write_failed = None;
        // The end is CRLF "." CRLF and nothing else: the dot line must end
        // in CRLF and follow a line that did (or the 354), so `\n.\r\n`
        // and friends never end the data (SMTP smuggling).
        let mut after_crlf = true;
        let ended = loop {
            let line = match self.read_line() {
                Ok(Some(l)) => l,
                _ => break false,
            };
            if after_crlf && line.ending == Ending::Crlf && line.text == b"." {
                break true;
            }
            after_crlf = line.ending == Ending::Crlf;
            // The 1000-octet limit is on the line as sent, stuffing dot
            // included; the wire has already thrown away the rest of it.
            if line.too_long(MAX_TEXT_LINE) {
                body.line_too_long();
            }
            let text = line.text.strip_prefix(b".").unwrap_or(&line.text);
            body.push(text, &mut out);
            body.push(
                if line.ending == Ending::Crlf {
                    b"\r\n"
                } else {
                    b"\n"
                },
                &mut out,
            );
            if out.len() >= 64 * 1024 {
                // After a failed write the rest is only read and checked
                // (the reply will be 451): memory stays at one buffer.
                if write_failed.is_none() {
                    write_failed = queued.write(&out).err();
                }
                out.clear();
            }
        };
        self.wire.set_max_line(MAX_COMMAND - 2);
        if !ended {
            queued.abort();
            return Next::Close;
        }
        self.last = "END-OF-MESSAGE";
        if write_failed.is_none() {
            write_failed = queued.write(&out).err();
        }
        self.finish_message(queued, &mut body, write_failed, &txn);
        Next::Go
    }

    /// finish_message - the end of the data: refuse a faulty message (the
    /// queue gets nothing), else commit and say 250 with the queue ID.
    fn finish_message(
        &mut self,
        mut queued: Queued,
        body: &mut Body,
        write_failed: Option<std::io::Error>,
        txn: &Txn,
    ) {
        if let Some(f) = body.finish() {
            let id = queued.id.clone();
            queued.abort();
            let (code, text) = fault_reply(f);
            info!(
                "{id}: reject: END-OF-MESSAGE from {}: {code} {text}; from=<{}>",
                self.client(),
                txn.sender
            );
            self.reply(code, text);
            return;
        }
        if let Some(e) = write_failed {
            queued.abort();
            self.refused(Refused::Temporary(format!("writing to enqueue: {e}")));
            return;
        }
        if let Some((_, msg)) = queued.held() {
            let (top, message) = match (&self.mail_checks, &txn.spf) {
                (Some(c), Some(spf)) => {
                    let (verdict, summary) = c.message(self.cfg, spf, msg);
                    info!("{}: authentication: {summary}", queued.id);
                    match verdict {
                        Verdict::Reject(text) => {
                            let id = queued.id.clone();
                            queued.abort();
                            info!(
                                "{id}: reject: END-OF-MESSAGE from {}: 550 {text}; from=<{}>",
                                self.client(),
                                txn.sender
                            );
                            self.reply(550, &text);
                            return;
                        }
                        Verdict::Accept { top, message } => (top, message),
                    }
                }
                // Not checked (this host's own client, or checks off): no
                // results of ours, and none that pretend to be.
                _ => (String::new(), mailauth::strip_ours(msg, &self.cfg.hostname)),
            };
            if let Err(e) = queued.release(top.as_bytes(), &message) {
                queued.abort();
                self.refused(Refused::Temporary(format!("writing to enqueue: {e}")));
                return;
            }
        }
        match queued.commit() {
            Ok(id) => {
                let t = format!("2.0.0 Ok: queued as {id}");
                self.reply(250, &t);
            }
            Err(r) => self.refused(r),
        }
    }

    /// refused - the queue would not take the message.
    fn refused(&mut self, r: Refused) {
        match r {
            Refused::Temporary(why) => {
                warning!("queue: {why}, client={}", self.client());
                self.reply(451, "4.3.0 Error: queue file write error, try again later");
            }
            Refused::Permanent(why) => {
                warning!("queue refused a message: {why}, client={}", self.client());
                self.reply(554, "5.3.0 Error: message refused by the queue");
            }
        }
    }

    /// bdat - one chunk (RFC 3030). Its octets are always read, even when
    /// the command is refused, so the session stays in step.
    fn bdat(&mut self, size: u64, last: bool) -> Next {
        let ok = self.txn.as_ref().is_some_and(|t| !t.rcpts.is_empty());
        if !ok {
            if !self.skip(size) {
                return Next::Close;
            }
            self.ready_for_data();
            return Next::Go;
        }
        let Some(mut txn) = self.txn.take() else {
            return Next::Go;
        };
        if txn.bdat.is_none() {
            let chunks = match self.open_queue(&txn) {
                Ok(q) => Chunks {
                    queued: Some(q),
                    body: Body::new(self.cfg.message_size_limit),
                    refused: None,
                },
                Err(r) => Chunks {
                    queued: None,
                    body: Body::new(self.cfg.message_size_limit),
                    refused: Some(r),
                },
            };
            txn.bdat = Some(chunks);
        }
        let Some(mut c) = txn.bdat.take() else {
            return Next::Go;
        };
        let mut left = size;
        let mut out = Vec::with_capacity(64 * 1024);
        while left > 0 {
            let want = left.min(64 * 1024) as usize;
            let got = match self.wire.read_some(want) {
                Ok(b) if !b.is_empty() => b,
                _ => {
                    info!("lost connection after BDAT from {}", self.client());
                    if let Some(q) = c.queued {
                        q.abort();
                    }
                    return Next::Close;
                }
            };
            left -= got.len() as u64;
            out.clear();
            c.body.push(got, &mut out);
            if let Some(q) = c.queued.as_mut()
                && c.refused.is_none()
                && let Err(e) = q.write(&out)
            {
                c.refused = Some(Refused::Temporary(format!("writing to enqueue: {e}")));
            }
        }
        if !last {
            if c.body.fault().is_some() || c.refused.is_some() {
                // The transaction is over; later chunks are read and refused.
                if let Some(q) = c.queued.take() {
                    q.abort();
                }
                match (c.refused.take(), c.body.fault()) {
                    (_, Some(f)) => {
                        let (code, text) = fault_reply(f);
                        self.reply(code, text);
                    }
                    (Some(r), None) => self.refused(r),
                    (None, None) => {}
                }
                return Next::Go;
            }
            let t = format!("2.0.0 Ok: {size} octets received");
            self.reply(250, &t);
            txn.bdat = Some(c);
            self.txn = Some(txn);
            return Next::Go;
        }
        match (c.queued, c.refused) {
            (Some(q), None) => self.finish_message(q, &mut c.body, None, &txn),
            (q, Some(r)) => {
                if let Some(q) = q {
                    q.abort();
                }
                self.refused(r);
            }
            (None, None) => self.refused(Refused::Temporary("no queue".into())),
        }
        Next::Go
    }

    /// skip - read and drop `size` octets of a refused BDAT.
    fn skip(&mut self, mut size: u64) -> bool {
        while size > 0 {
            match self.wire.read_some(size.min(64 * 1024) as usize) {
                Ok(b) if !b.is_empty() => size -= b.len() as u64,
                _ => return false,
            }
        }
        true
    }

    fn starttls(&mut self) -> Next {
        let Some(cfg) = self.tls.clone() else {
            self.reply(502, "5.5.1 Error: command not implemented");
            return Next::Go;
        };
        if self.wire.is_tls() {
            self.reply(554, "5.5.1 Error: TLS already active");
            return Next::Go;
        }
        let client = self.client();
        let go = b"220 2.0.0 Ready to start TLS\r\n";
        if self.wire.upgrade(cfg, go, "STARTTLS", &client).is_err() {
            return Next::Close;
        }
        // RFC 3207 4.2: forget everything learned before TLS.
        self.reset();
        self.helo = None;
        self.esmtp = false;
        Next::Go
    }

    fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Next {
        if self.mode != Mode::Submission {
            self.reply(503, "5.5.1 Error: authentication not enabled");
            return Next::Go;
        }
        if self.auth.is_some() {
            self.reply(503, "5.5.1 Error: already authenticated");
            return Next::Go;
        }
        if self.txn.is_some() {
            self.reply(503, "5.5.1 Error: MAIL transaction in progress");
            return Next::Go;
        }
        if !self.esmtp {
            self.reply(503, "5.5.1 Error: send EHLO first");
            return Next::Go;
        }
        if !self.auth_offered() {
            self.reply(
                538,
                "5.7.11 Encryption required for requested authentication mechanism",
            );
            return Next::Go;
        }
        let Some(mech) = Mechanism::parse(mechanism) else {
            self.reply(504, "5.5.4 Unrecognized authentication type");
            return Next::Go;
        };
        let (mut x, mut step) = Exchange::start(mech, initial.as_deref());
        self.wire.set_max_line(MAX_SASL_LINE);
        let creds = loop {
            match step {
                Step::Challenge(c) => {
                    let t = format!("334 {}\r\n", sasl::encode(&c));
                    self.wire.queue(t.as_bytes());
                    let line = match self.read_line() {
                        Ok(Some(l)) => l,
                        _ => return Next::Close,
                    };
                    if line.too_long(MAX_SASL_LINE) {
                        step = Step::Bad("response too long");
                        continue;
                    }
                    step = x.respond(&String::from_utf8_lossy(&line.text));
                }
                Step::Cancelled => {
                    self.wire.set_max_line(MAX_COMMAND - 2);
                    self.reply(501, "5.7.0 Authentication aborted");
                    return Next::Go;
                }
                Step::Bad(why) => {
                    self.wire.set_max_line(MAX_COMMAND - 2);
                    let t = format!("5.5.2 Cannot decode response: {why}");
                    self.reply(501, &t);
                    return Next::Go;
                }
                Step::Done(c) => break c,
            }
        };
        self.wire.set_max_line(MAX_COMMAND - 2);
        let Some(checker) = self.checker.as_ref() else {
            self.reply(454, "4.7.0 Temporary authentication failure");
            return Next::Go;
        };
        // Replies queued so far go out now: the check may take seconds.
        let _ = self.wire.flush();
        let req = Request::new(
            Service::Smtp,
            mech.name(),
            &self.client(),
            &creds.authzid,
            &creds.user,
            &creds.password,
        );
        // The check has waited out the failure delay and logged a failure.
        match checker.ask(&req).answer {
            Answer::Ok(_) => {
                info!(
                    "login: user=<{}>, method={}, client={}",
                    creds.user,
                    mech.name(),
                    self.client()
                );
                self.auth = Some((creds.user, mech.name()));
                // No second AUTH in a session (RFC 4954 4): the check's
                // process, root's when started as root, can end now.
                self.checker = None;
                self.reply(235, "2.7.0 Authentication successful");
                Next::Go
            }
            Answer::No => {
                self.reply(535, "5.7.8 Error: authentication failed");
                Next::Go
            }
            Answer::Bye => {
                self.reply(535, "5.7.8 Error: authentication failed");
                let t = format!("4.7.0 {} Error: too many failed logins", self.cfg.hostname);
                self.reply(421, &t);
                Next::Close
            }
            Answer::Temp => {
                self.reply(454, "4.7.0 Temporary authentication failure");
                Next::Go
            }
        }
    }
}

/// fault_reply - the reply for a message refused at its end.
fn fault_reply(f: Fault) -> (u16, &'static str) {
    match f {
        Fault::BareLineEnd => (
            550,
            "5.5.2 Error: bare <CR> or <LF> in message; it was not queued",
        ),
        Fault::TooBig => (552, "5.3.4 Error: message file too big"),
        Fault::LineTooLong => (
            500,
            "5.5.2 Error: line longer than 1000 octets in message; it was not queued",
        ),
    }
}

/// verb_upper - a command's name as Postfix logs it ("after RCPT").
fn verb_upper(name: &str) -> &'static str {
    match name {
        "helo" => "HELO",
        "ehlo" => "EHLO",
        "mail" => "MAIL",
        "rcpt" => "RCPT",
        "data" => "DATA",
        "bdat" => "BDAT",
        "rset" => "RSET",
        "noop" => "NOOP",
        "quit" => "QUIT",
        "vrfy" => "VRFY",
        "expn" => "EXPN",
        "help" => "HELP",
        "starttls" => "STARTTLS",
        "auth" => "AUTH",
        _ => "UNKNOWN",
    }
}

/// verb_name - the lowercase name of a command that failed to parse, for
/// the disconnect counts.
fn verb_name(line: &[u8]) -> &'static str {
    let verb: Vec<u8> = line
        .iter()
        .take_while(|&&b| b != b' ')
        .map(u8::to_ascii_lowercase)
        .collect();
    match verb.as_slice() {
        b"helo" => "helo",
        b"ehlo" => "ehlo",
        b"mail" => "mail",
        b"rcpt" => "rcpt",
        b"data" => "data",
        b"bdat" => "bdat",
        b"rset" => "rset",
        b"quit" => "quit",
        b"auth" => "auth",
        b"starttls" => "starttls",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_counts_read_as_postfix() {
        let mut c = Counts::default();
        c.add("ehlo", true);
        c.add("mail", true);
        c.add("rcpt", true);
        c.add("rcpt", false);
        c.add("quit", true);
        assert_eq!(c.line(), " ehlo=1 mail=1 rcpt=1/2 quit=1 commands=4/5");
        let mut c = Counts::default();
        c.add("quit", true);
        assert_eq!(c.line(), " quit=1 commands=1");
    }
}
