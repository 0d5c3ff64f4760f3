//! serve - the session's I/O: read commands from the wire (lines and
//! their literals, under caps, with `+` go-aheads for synchronizing
//! literals), feed the session, carry out its actions (replies, password
//! checks, STARTTLS, COMPRESS, IDLE), and log the session. The same loop
//! runs in the pre-login process (`serve`: it asks the password check,
//! and after a good login hands the connection to the session) and in
//! the session after login (`session`: it starts where the login left
//! off, as the mailbox owner).
//!
//! Distrusts the client: a command line is cut at MAX_LINE and a command
//! with its literals at MAX_COMMAND, except APPEND's message literals,
//! each of which may reach the configured message size limit and all of
//! which (MULTIAPPEND) the larger of that and MAX_APPEND_TOTAL; an oversized
//! synchronizing literal is refused before the client sends it, an
//! oversized non-synchronizing one ends the session (it is already on
//! its way and cannot be told apart from commands).

use crate::command;
use crate::session::{Action, Options, Session, State};
use crate::watch::{Watch, Woke};
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
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Autologout (RFC 3501 §5.4: at least 30 minutes).
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Before login, a client gets less time.
pub const IDLE_PRE_LOGIN: Duration = Duration::from_secs(60);
/// All the time a client gets to log in, however busy it keeps the
/// connection (Dovecot's login processes allow 3 minutes).
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(3 * 60);
/// Longest command line.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest command with its literals, APPEND's message aside.
pub const MAX_COMMAND: usize = 64 * 1024;
/// Most octets of messages one APPEND carries (MULTIAPPEND, RFC 3502),
/// when the APPEND limit is smaller; each message still has that limit.
/// The command and its parsed copy are both held while it runs: twice
/// this stays well inside main.rs's memory cap (1 GiB and more).
pub const MAX_APPEND_TOTAL: u64 = 128 * 1024 * 1024;

/// The session's surroundings.
struct Ctx<'a> {
    cfg: &'a Config,
    /// The client, as logged.
    client: String,
    tls: Option<Arc<ServerConfig>>,
    /// Before login: the way to the password check.
    checker: Option<Checker>,
    /// After a good login: the session's socket and the login's tag.
    handoff: Option<(OwnedFd, String)>,
    user: Option<String>,
}

/// What reading one command gave.
enum Input {
    Command(Vec<u8>),
    /// Refused before its literal came: say so and read on.
    Refused(Vec<u8>),
    Closed(&'static str),
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
    let mut wire = Wire::new(IDLE_PRE_LOGIN, MAX_LINE);
    wire.set_deadline(Instant::now() + LOGIN_DEADLINE);
    let implicit = if implicit_tls { tls.clone() } else { None };
    let Some(peer) = wire.accept(peer, &cfg.proxy_trusted, implicit) else {
        return Ok(());
    };
    let session = Session::new(Options {
        tls_available: tls.is_some(),
        tls_active: wire.is_tls(),
        plaintext_anyway: peer.is_loopback() || cfg.auth_allow_plaintext,
        max_failures: cfg.auth_max_failures,
        separator: cfg.imap_separator,
        append_limit: cfg.message_size_limit,
    });
    let ctx = Ctx {
        cfg,
        client: peer.log_name(),
        tls,
        checker: Some(checker),
        handoff: None,
        user: None,
    };
    wire.queue(&session.greeting());
    run(ctx, session, wire);
    Ok(())
}

/// session - after a good login, as the mailbox owner: the record says
/// who (from the password check), the handoff where the login left off
/// (from the pre-login process).
pub fn session(cfg: &Config, record: Record, handoff: Handoff) -> Result<(), Exit> {
    let mut wire = Wire::new(IDLE, MAX_LINE);
    wire.prime(handoff.input);
    let mut session = Session::new(Options {
        tls_available: false,
        tls_active: handoff.relayed,
        plaintext_anyway: true,
        max_failures: cfg.auth_max_failures,
        separator: cfg.imap_separator,
        append_limit: cfg.message_size_limit,
    });
    let u = &record.user;
    let tag = handoff.tag.as_str();
    info!(
        "login: user=<{}>, method={}, client={}",
        u.name, record.method, record.client
    );
    let mut ctx = Ctx {
        cfg,
        client: record.client.clone(),
        tls: None,
        checker: None,
        handoff: None,
        user: Some(u.name.clone()),
    };
    let mut first = match u.mailbox.strip_suffix('/') {
        Some(dir) => {
            session.set_quota(u.quota);
            crate::specialuse::provision(std::path::Path::new(dir), &cfg.imap_folders);
            session.logged_in(tag, Ok(PathBuf::from(dir)))
        }
        None => {
            warning!(
                "login: user=<{}>: mailbox {} is an mbox; imapd serves Maildir only",
                u.name,
                u.mailbox
            );
            session.logged_in(tag, Err("mbox".into()))
        }
    };
    // A session that could not open the mailbox has nothing to serve:
    // no one can log in again here.
    if session.state == crate::session::State::NotAuthenticated {
        first.push(Action::Reply(b"* BYE mailbox unavailable\r\n".to_vec()));
        first.push(Action::Close);
    }
    match act(&mut ctx, &mut session, &mut wire, first) {
        Ok(true) => run(ctx, session, wire),
        Ok(false) => end(ctx, wire, "logout"),
        Err(why) => end(ctx, wire, why),
    }
    Ok(())
}

/// run - read, feed, act, until the session ends or a login hands it over.
fn run(mut ctx: Ctx, mut session: Session, mut wire: Wire) {
    let cfg = ctx.cfg;
    let why = loop {
        if ctx.handoff.is_some() {
            break "login";
        }
        if session.in_sasl() {
            let line = match wire.read_line() {
                Ok(Some(l)) => l,
                Ok(None) => break "connection closed",
                Err(_) => break "connection lost",
            };
            let actions = session.sasl_line(&line.text);
            match act(&mut ctx, &mut session, &mut wire, actions) {
                Ok(true) => continue,
                Ok(false) => break "logout",
                Err(why) => break why,
            }
        }
        // Before login, APPEND's literals are as small as any command's:
        // an unauthenticated client cannot make the server hold messages.
        let append_limit = if session.state == State::NotAuthenticated {
            0
        } else {
            cfg.message_size_limit
        };
        let cmd = match read_command(&mut wire, append_limit) {
            Ok(Input::Command(c)) => c,
            Ok(Input::Refused(reply)) => {
                wire.queue_vec(reply);
                continue;
            }
            Ok(Input::Closed(why)) => break why,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                wire.queue(b"* BYE Autologout; idle for too long\r\n");
                break "idle timeout";
            }
            Err(_) => break "connection lost",
        };
        let actions = session.feed(&cmd, &mut wire);
        drop(cmd);
        match act(&mut ctx, &mut session, &mut wire, actions) {
            Ok(true) => {}
            Ok(false) => break "logout",
            Err(why) => break why,
        }
        // About to wait for the client: what the command read and freed
        // (a folder's listing, a message) goes back to the kernel rather
        // than stay this session's for as long as it lasts.
        if !wire.pending_input() {
            posthorn_sys::fsio::release_free_memory();
        }
    };
    // Not needed by a relay, which may live as long as the session.
    drop(session);
    end(ctx, wire, why);
}

/// end - hand the connection over after a login, or close it and log.
fn end(mut ctx: Ctx, mut wire: Wire, why: &str) {
    if let Some((sock, tag)) = ctx.handoff.take() {
        // The session takes it from here; under TLS this process stays
        // as the relay until the session or the client is gone.
        if let Err(e) = handoff::hand_over(wire, sock, &tag, IDLE) {
            info!("relay ended: {e}, client={}", ctx.client);
        }
        return;
    }
    wire.close();
    info!(
        "disconnect from {} user=<{}> ({why})",
        ctx.client,
        ctx.user.as_deref().unwrap_or("")
    );
}

/// tag_of - the tag of a command line, for a refusal.
fn tag_of(line: &[u8]) -> String {
    let t: Vec<u8> = line
        .iter()
        .take_while(|&&c| c != b' ')
        .take(64)
        .copied()
        .collect();
    let t = String::from_utf8_lossy(&t).into_owned();
    if t.is_empty() || t.bytes().any(|c| !c.is_ascii_graphic()) {
        "*".into()
    } else {
        t
    }
}

/// is_append - whether a command line starts an APPEND (its literal may
/// be a whole message).
fn is_append(first: &[u8]) -> bool {
    let mut words = first.split(|&c| c == b' ');
    let _ = words.next();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}

/// read_command - one command with its literals read in. APPEND's
/// literals are messages: each may reach `append_limit`, all of them
/// together the larger of that and MAX_APPEND_TOTAL (MULTIAPPEND); the
/// rest of any command stays within MAX_COMMAND.
fn read_command(wire: &mut Wire, append_limit: u64) -> std::io::Result<Input> {
    let mut buf: Vec<u8> = Vec::new();
    let mut first: Option<Vec<u8>> = None;
    // Octets of APPEND's message literals so far (not counted in MAX_COMMAND).
    let mut messages: u64 = 0;
    let total_limit = append_limit.max(MAX_APPEND_TOTAL);
    loop {
        let Some(line) = wire.read_line()? else {
            return Ok(Input::Closed("connection closed"));
        };
        if line.too_long(MAX_LINE)
            || buf.len() as u64 + line.text.len() as u64 > MAX_COMMAND as u64 + messages
        {
            let tag = tag_of(first.as_deref().unwrap_or(&line.text));
            return Ok(Input::Refused(
                format!("{tag} BAD command line too long\r\n").into_bytes(),
            ));
        }
        if first.is_none() {
            first = Some(line.text.clone());
        }
        buf.extend_from_slice(&line.text);
        let Some((n, sync)) = command::literal_at_end(&line.text) else {
            return Ok(Input::Command(buf));
        };
        let head = first.as_deref().unwrap_or(b"");
        // Only APPEND's messages may be big (after login: a limit of 0
        // before it); everything else stays small.
        let append = append_limit > 0 && is_append(head);
        let limit = if append {
            append_limit.min(total_limit.saturating_sub(messages))
        } else {
            (MAX_COMMAND as u64 + messages).saturating_sub(buf.len() as u64)
        };
        if n > limit {
            let tag = tag_of(head);
            // No `+` for a literal we will not take: the client stops
            // this command here (RFC 3502 §6.3.11 for MULTIAPPEND).
            if sync {
                return Ok(Input::Refused(
                    format!("{tag} NO [TOOBIG] literal too large\r\n").into_bytes(),
                ));
            }
            wire.queue(b"* BYE [TOOBIG] literal too large\r\n");
            return Ok(Input::Closed("literal too large"));
        }
        if append {
            messages += n;
        }
        if sync {
            wire.queue(b"+ Ready for literal data\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        let mut left = n as usize;
        buf.reserve(left);
        while left > 0 {
            let got = wire.read_some(left)?;
            if got.is_empty() {
                return Ok(Input::Closed("connection closed in a literal"));
            }
            left -= got.len();
            buf.extend_from_slice(got);
        }
    }
}

/// act - carry out actions in order; false when the session is over.
fn act(
    ctx: &mut Ctx,
    session: &mut Session,
    wire: &mut Wire,
    actions: Vec<Action>,
) -> Result<bool, &'static str> {
    let mut queue: std::collections::VecDeque<Action> = actions.into();
    while let Some(a) = queue.pop_front() {
        match a {
            Action::Reply(b) => wire.queue_vec(b),
            Action::Close => return Ok(false),
            Action::Delay(d) => {
                wire.flush().map_err(|_| "connection lost")?;
                std::thread::sleep(d);
            }
            Action::Compress => {
                // What the client sent before our OK was not compressed:
                // taking it either way would be a guess.
                if wire.pending_input() {
                    warning!(
                        "data pipelined after COMPRESS, dropping the connection: client={}",
                        ctx.client
                    );
                    return Err("data pipelined after COMPRESS");
                }
                wire.start_deflate().map_err(|_| "connection lost")?;
            }
            Action::StartTls => {
                let Some(cfg) = ctx.tls.clone() else {
                    return Err("no TLS");
                };
                wire.upgrade(cfg, b"", "STARTTLS", &ctx.client)?;
                session.tls_started();
            }
            Action::Idle { tag } => {
                if !idle(ctx, session, wire, &tag)? {
                    return Ok(false);
                }
            }
            Action::Login {
                tag,
                method,
                authzid,
                user,
                password,
            } => {
                let more = login(ctx, session, &tag, method, &authzid, &user, &password.0);
                if ctx.handoff.is_some() {
                    // Logged in: nothing more happens in this process
                    // but the relay, which the login deadline must not
                    // cut short.
                    wire.set_deadline(None);
                    return Ok(true);
                }
                for m in more.into_iter().rev() {
                    queue.push_front(m);
                }
            }
        }
    }
    Ok(true)
}

/// idle - IDLE (RFC 2177): push the folder's changes as they happen
/// until the client says DONE; the autologout still counts, from the
/// start of the IDLE (clients re-issue it every 29 minutes, §3).
///
/// The wait is a poll(2) on fd 0 beside the watch, after what the wire
/// already holds: under TLS, plaintext rustls decrypted but the wire has
/// not taken would not wake it. That needs more than one read's worth
/// (16 KiB) pipelined ahead of DONE, which a client cannot do: DONE
/// answers our `+ idling`, and everything sent before it was read.
fn idle(
    ctx: &mut Ctx,
    session: &mut Session,
    wire: &mut Wire,
    tag: &str,
) -> Result<bool, &'static str> {
    let mut watch = Watch::new(session.idle_dir().as_deref());
    let until = Instant::now() + IDLE;
    loop {
        wire.flush().map_err(|_| "connection lost")?;
        let left = until.saturating_duration_since(Instant::now());
        let woke = if wire.pending_input() {
            Woke::Client
        } else if left.is_zero() {
            Woke::Timeout
        } else {
            posthorn_sys::fsio::release_free_memory();
            let stdin = std::io::stdin();
            watch
                .wait(stdin.as_fd(), left)
                .map_err(|_| "connection lost")?
        };
        match woke {
            Woke::Client => {
                let line = match wire.read_line() {
                    Ok(Some(l)) => l,
                    Ok(None) => return Err("connection closed"),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        wire.queue(b"* BYE Autologout; idle for too long\r\n");
                        return Err("idle timeout");
                    }
                    Err(_) => return Err("connection lost"),
                };
                let actions = session.idle_done(tag, &line.text);
                return act(ctx, session, wire, actions);
            }
            Woke::Folder => {
                session.idle_seen(watch.take_seen());
                let actions = session.idle_updates();
                if !act(ctx, session, wire, actions)? {
                    return Ok(false);
                }
            }
            Woke::Timeout => {
                wire.queue(b"* BYE Autologout; idle for too long\r\n");
                return Err("idle timeout");
            }
        }
    }
}

/// login - ask the password check; after a good login the connection
/// goes to the session (`ctx.handoff`), which sends the tagged OK.
fn login(
    ctx: &mut Ctx,
    session: &mut Session,
    tag: &str,
    method: &'static str,
    authzid: &str,
    user: &str,
    password: &[u8],
) -> Vec<Action> {
    let Some(checker) = ctx.checker.as_ref() else {
        // The session after login: the state machine refuses a second
        // login before this is reached.
        return session.login_failed(tag, true);
    };
    let req = Request::new(Service::Imap, method, &ctx.client, authzid, user, password);
    let reply = checker.ask(&req);
    // The check has waited out the failure delay already.
    let no_delay = |v: Vec<Action>| -> Vec<Action> {
        v.into_iter()
            .filter(|a| !matches!(a, Action::Delay(_)))
            .collect()
    };
    match (reply.answer, reply.session) {
        (Answer::Ok(_), Some(sock)) => {
            ctx.handoff = Some((sock, tag.to_string()));
            Vec::new()
        }
        (Answer::Ok(_), None) | (Answer::Temp, _) => session.login_failed(tag, true),
        (Answer::No, _) => no_delay(session.login_failed(tag, false)),
        (Answer::Bye, _) => {
            let mut v = no_delay(session.login_failed(tag, false));
            if !v.contains(&Action::Close) {
                v.push(Action::Reply(
                    b"* BYE Too many authentication failures\r\n".to_vec(),
                ));
                v.push(Action::Close);
            }
            v
        }
    }
}
