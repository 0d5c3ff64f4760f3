//! serve - the session's I/O: read lines from the wire, feed the session,
//! carry out its actions (replies, password checks, message streaming,
//! STLS, UPDATE), and log the session's events. The same loop runs in
//! the pre-login process (`serve`: it asks the password check, and after
//! a good login hands the connection to the session) and in the session
//! after login (`session`: as the mailbox owner).

use crate::maildrop::{Maildrop, OpenError};
use crate::session::{Action, Options, Session};
use crate::stream;
use posthorn_auth::checker::Checker;
use posthorn_auth::request::{Answer, Request, Service};
use posthorn_auth::split::Record;
use posthorn_mail::Config;
use posthorn_net::handoff::{self, Handoff};
use posthorn_net::peer::Peer;
use posthorn_net::wire::Wire;
use posthorn_sys::exit::Exit;
use posthorn_sys::{info, warning};
use rustls::ServerConfig;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Idle time before the session is closed (RFC 1939: at least 10 minutes).
pub const IDLE: Duration = Duration::from_secs(600);

/// Longest line kept: longer lines are cut here and reported too long.
/// (SASL responses may be up to 4096 octets; commands up to 255.)
pub const MAX_LINE: usize = 8192;

/// What the loop does after a batch of actions.
enum Next {
    Continue,
    Close,
}

/// The session's surroundings.
struct Ctx {
    /// The client, as logged.
    client: String,
    tls: Option<Arc<ServerConfig>>,
    /// Before login: the way to the password check.
    checker: Option<Checker>,
    /// After a good login: the session's socket.
    handoff: Option<OwnedFd>,
    user: Option<String>,
    /// Move messages RETR sent to cur/ with the S flag at QUIT.
    flag_updates: bool,
}

/// serve - the pre-login process: from the greeting to a login, then the
/// connection handed to the session (or relayed for it, under TLS).
pub fn serve(
    cfg: &Config,
    peer: Peer,
    tls: Option<Arc<ServerConfig>>,
    implicit_tls: bool,
    checker: Checker,
) -> Result<(), Exit> {
    let mut wire = Wire::new(IDLE, MAX_LINE);
    let implicit = if implicit_tls { tls.clone() } else { None };
    let Some(peer) = wire.accept(peer, &cfg.proxy_trusted, implicit) else {
        return Ok(());
    };
    let session = Session::new(Options {
        tls_available: tls.is_some(),
        tls_active: wire.is_tls(),
        plaintext_anyway: peer.is_loopback() || cfg.auth_allow_plaintext,
        max_failures: cfg.auth_max_failures,
    });
    let ctx = Ctx {
        client: peer.log_name(),
        tls,
        checker: Some(checker),
        handoff: None,
        user: None,
        flag_updates: false,
    };
    wire.queue(&Session::greeting());
    run(ctx, session, wire);
    Ok(())
}

/// session - after a good login, as the mailbox owner: the record says
/// who (from the password check), the handoff where the login left off
/// (from the pre-login process).
pub fn session(
    cfg: &Config,
    record: Record,
    handoff: Handoff,
    flag_updates: bool,
) -> Result<(), Exit> {
    let mut wire = Wire::new(IDLE, MAX_LINE);
    wire.prime(handoff.input);
    let mut session = Session::new(Options {
        tls_available: false,
        tls_active: handoff.relayed,
        plaintext_anyway: true,
        max_failures: cfg.auth_max_failures,
    });
    let u = &record.user;
    info!(
        "login: user=<{}>, method={}, client={}",
        u.name, record.method, record.client
    );
    let mut ctx = Ctx {
        client: record.client.clone(),
        tls: None,
        checker: None,
        handoff: None,
        user: Some(u.name.clone()),
        flag_updates,
    };
    let opened = match u.mailbox.strip_suffix('/') {
        Some(dir) => Maildrop::open(Path::new(dir)),
        None => {
            warning!(
                "login: user=<{}>: mailbox {} is an mbox; pop3d serves Maildir only",
                u.name,
                u.mailbox
            );
            Err(OpenError::Temporary("mbox".into()))
        }
    };
    match &opened {
        Err(OpenError::InUse) => info!("user=<{}>: maildrop in use", u.name),
        Err(OpenError::Temporary(e)) => warning!("user=<{}>: {e}", u.name),
        Ok(_) => {}
    }
    let first = session.logged_in(opened);
    match act(&mut ctx, &mut session, &mut wire, first) {
        Ok(Next::Continue) => run(ctx, session, wire),
        Ok(Next::Close) => end(ctx, &session, wire, "quit"),
        Err(why) => end(ctx, &session, wire, why),
    }
    Ok(())
}

/// run - read, feed, act, until the session ends or a login hands it over.
fn run(mut ctx: Ctx, mut session: Session, mut wire: Wire) {
    let why = loop {
        if ctx.handoff.is_some() {
            break "login";
        }
        let line = match wire.read_line() {
            Ok(Some(l)) => l,
            Ok(None) => break "connection closed",
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                wire.queue(b"-ERR autologout: idle for too long\r\n");
                break "idle timeout";
            }
            Err(_) => break "connection lost",
        };
        let actions = session.feed(&line.text, line.len);
        match act(&mut ctx, &mut session, &mut wire, actions) {
            Ok(Next::Continue) => {}
            Ok(Next::Close) => break "quit",
            Err(why) => break why,
        }
    };
    end(ctx, &session, wire, why);
}

/// end - hand the connection over after a login, or close it and log.
fn end(mut ctx: Ctx, session: &Session, mut wire: Wire, why: &str) {
    if let Some(sock) = ctx.handoff.take() {
        // The session takes it from here; under TLS this process stays
        // as the relay until the session or the client is gone.
        if let Err(e) = handoff::hand_over(wire, sock, "", IDLE) {
            info!("relay ended: {e}, client={}", ctx.client);
        }
        return;
    }
    wire.close();
    let s = &session.stats;
    info!(
        "disconnect from {} user=<{}> retr={}/{} del={} ({why})",
        ctx.client,
        ctx.user.as_deref().unwrap_or(""),
        s.retr,
        s.retr_bytes,
        s.deleted
    );
}

/// act - carry out actions in order; more may follow from a login.
fn act(
    ctx: &mut Ctx,
    session: &mut Session,
    wire: &mut Wire,
    actions: Vec<Action>,
) -> Result<Next, &'static str> {
    let mut queue: std::collections::VecDeque<Action> = actions.into();
    while let Some(a) = queue.pop_front() {
        match a {
            Action::Reply(b) => wire.queue_vec(b),
            Action::Close => return Ok(Next::Close),
            Action::Delay(d) => {
                wire.flush().map_err(|_| "connection lost")?;
                std::thread::sleep(d);
            }
            Action::StartTls => {
                let Some(cfg) = ctx.tls.clone() else {
                    return Err("no TLS");
                };
                wire.upgrade(cfg, b"", "STLS", &ctx.client)?;
                session.tls_started();
            }
            Action::Login {
                method,
                authzid,
                user,
                password,
            } => {
                let more = login(ctx, session, method, &authzid, &user, &password.0);
                if ctx.handoff.is_some() {
                    // Logged in: nothing more happens in this process.
                    return Ok(Next::Continue);
                }
                for m in more.into_iter().rev() {
                    queue.push_front(m);
                }
            }
            Action::Send { index, part } => {
                send(session, wire, index, part).map_err(|_| "connection lost")?;
            }
            Action::Update => {
                if !ctx.flag_updates
                    && let Some(d) = session.maildrop.as_mut()
                {
                    d.messages.iter_mut().for_each(|m| m.seen = false);
                }
                let failed = session.maildrop.as_mut().map_or(0, Maildrop::update);
                if failed > 0 {
                    warning!("update: {failed} messages could not be deleted");
                }
                let more = session.updated(failed);
                if let Some(d) = session.maildrop.as_mut() {
                    d.release();
                }
                for m in more.into_iter().rev() {
                    queue.push_front(m);
                }
            }
        }
    }
    Ok(Next::Continue)
}

/// login - ask the password check; after a good login the connection
/// goes to the session (`ctx.handoff`), which opens the maildrop.
fn login(
    ctx: &mut Ctx,
    session: &mut Session,
    method: &'static str,
    authzid: &str,
    user: &str,
    password: &[u8],
) -> Vec<Action> {
    let Some(checker) = ctx.checker.as_ref() else {
        // The session after login: the state machine refuses a second
        // login before this is reached.
        return session.login_failed(true);
    };
    let req = Request::new(Service::Pop3, method, &ctx.client, authzid, user, password);
    let reply = checker.ask(&req);
    // The check has waited out the failure delay already.
    let no_delay = |v: Vec<Action>| -> Vec<Action> {
        v.into_iter()
            .filter(|a| !matches!(a, Action::Delay(_)))
            .collect()
    };
    match (reply.answer, reply.session) {
        (Answer::Ok(_), Some(sock)) => {
            ctx.handoff = Some(sock);
            Vec::new()
        }
        (Answer::Ok(_), None) | (Answer::Temp, _) => session.login_failed(true),
        (Answer::No, _) => no_delay(session.login_failed(false)),
        (Answer::Bye, _) => {
            let mut v = no_delay(session.login_failed(false));
            if !v.contains(&Action::Close) {
                v.push(Action::Close);
            }
            v
        }
    }
}

/// send - RETR or TOP: `+OK`, the message streamed, `.`; or `-ERR` when
/// the file is gone or unreadable (another client deleted it).
fn send(
    session: &mut Session,
    wire: &mut Wire,
    index: usize,
    part: stream::Part,
) -> std::io::Result<()> {
    let Some(d) = session.maildrop.as_ref() else {
        wire.queue(b"-ERR no maildrop\r\n");
        return Ok(());
    };
    let Some(m) = d.messages.get(index) else {
        wire.queue(b"-ERR no such message\r\n");
        return Ok(());
    };
    let f = match d.open_message(m) {
        Ok(f) => f,
        Err(e) => {
            // Gone: another client expunged it, which is no fault here.
            if e.kind() == std::io::ErrorKind::NotFound {
                info!("{}: expunged meanwhile", d.path(m).display());
            } else {
                warning!("{}: {e}", d.path(m).display());
            }
            wire.queue(
                format!(
                    "-ERR message {} is gone or unreadable (deleted by another client?)\r\n",
                    index + 1
                )
                .as_bytes(),
            );
            return Ok(());
        }
    };
    wire.queue(format!("+OK {} octets\r\n", m.size).as_bytes());
    let sent = stream::send(f, part, wire)?;
    if part == stream::Part::Whole {
        session.retrieved(index, sent);
    }
    Ok(())
}
