//! serve - the session's I/O: read lines from the wire, feed the session,
//! carry out its actions (replies, password checks, the switch to the
//! user, message streaming, STLS, UPDATE), and log the session's events.

use crate::maildrop::{Maildrop, OpenError};
use crate::session::{Action, Options, Session};
use crate::stream;
use posthorn_auth::login::{self, Refusal};
use posthorn_mail::Config;
use posthorn_net::peer::Peer;
use posthorn_net::wire::Wire;
use posthorn_sys::exit::Exit;
use posthorn_sys::privs::Account;
use posthorn_sys::{info, warning};
use rustls::ServerConfig;
use std::io::Write;
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
struct Ctx<'a> {
    cfg: &'a Config,
    peer: &'a Peer,
    tls: Option<Arc<ServerConfig>>,
    /// Set when started as root: the account we run as until login.
    pre_login: Option<Account>,
    user: Option<String>,
    /// Move messages RETR sent to cur/ with the S flag at QUIT.
    flag_updates: bool,
}

/// serve - run the session to its end. Errors are only those worth an
/// exit code; a client going away is a normal end.
pub fn serve(
    cfg: &Config,
    peer: Peer,
    tls: Option<Arc<ServerConfig>>,
    implicit_tls: bool,
    flag_updates: bool,
    pre_login: Option<Account>,
) -> Result<(), Exit> {
    let mut wire = Wire::new(IDLE, MAX_LINE);
    let implicit = if implicit_tls { tls.clone() } else { None };
    let Some(peer) = wire.accept(peer, &cfg.proxy_trusted, implicit) else {
        return Ok(());
    };
    let peer = &peer;
    let mut session = Session::new(Options {
        tls_available: tls.is_some(),
        tls_active: wire.is_tls(),
        plaintext_anyway: peer.is_loopback() || cfg.auth_allow_plaintext,
        max_failures: cfg.auth_max_failures,
    });
    let mut ctx = Ctx {
        cfg,
        peer,
        tls,
        pre_login,
        user: None,
        flag_updates,
    };
    wire.queue(&Session::greeting());
    let end = loop {
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
    wire.close();
    let s = &session.stats;
    info!(
        "disconnect from {} user=<{}> retr={}/{} del={} ({end})",
        peer.log_name(),
        ctx.user.as_deref().unwrap_or(""),
        s.retr,
        s.retr_bytes,
        s.deleted
    );
    Ok(())
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
                wire.upgrade(cfg, b"", "STLS", &ctx.peer.log_name())?;
                session.tls_started();
            }
            Action::Login {
                method,
                authzid,
                user,
                password,
            } => {
                let more = login(ctx, session, method, &authzid, &user, &password.0);
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

/// login - check a password; on success become the user and open the maildrop.
fn login(
    ctx: &mut Ctx,
    session: &mut Session,
    method: &'static str,
    authzid: &str,
    user: &str,
    password: &[u8],
) -> Vec<Action> {
    let client = ctx.peer.log_name();
    let result = if !authzid.is_empty() && authzid != user {
        // A master-user login (authorize as someone else): not supported.
        Err(Refusal::Failed)
    } else {
        login::with_root(ctx.pre_login.as_ref(), || {
            login::authenticate(ctx.cfg, user, password)
        })
    };
    let l = match result {
        Ok(l) => l,
        Err(Refusal::Failed) => {
            warning!("{}", login::failure_line(method, user, &client));
            return session.login_failed(false);
        }
        Err(Refusal::Temporary(why)) => {
            warning!("login: {why}, client={client}");
            return session.login_failed(true);
        }
    };
    if l.plain_hash {
        info!("user {}: the password is stored in plaintext", l.user.name);
    }
    if let Err(e) = login::become_owner(ctx.pre_login.as_ref(), &l.user) {
        warning!("login: user=<{}>: {}", l.user.name, e.message);
        return session.logged_in(Err(OpenError::Temporary(e.message)));
    }
    info!(
        "login: user=<{}>, method={method}, client={client}",
        l.user.name
    );
    ctx.user = Some(l.user.name.clone());
    let Some(dir) = l.user.mailbox.strip_suffix('/') else {
        warning!(
            "login: user=<{}>: mailbox {} is an mbox; pop3d serves Maildir only",
            l.user.name,
            l.user.mailbox
        );
        return session.logged_in(Err(OpenError::Temporary("mbox".into())));
    };
    let opened = Maildrop::open(Path::new(dir));
    match &opened {
        Err(OpenError::InUse) => info!("user=<{}>: maildrop in use", l.user.name),
        Err(OpenError::Temporary(e)) => warning!("user=<{}>: {e}", l.user.name),
        Ok(_) => {}
    }
    session.logged_in(opened)
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
    let f = match std::fs::File::open(d.path(m)) {
        Ok(f) => f,
        Err(e) => {
            warning!("{}: {e}", d.path(m).display());
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
