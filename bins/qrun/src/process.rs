//! process - one pass over one queued message: expand, deliver what is
//! not done yet, record each outcome durably, bounce failures, and remove
//! the message when nothing is left to do.

use crate::agent::{Agent, Outcome};
use crate::bounce::{self, DOUBLE_BOUNCE, Failure, Return};
use crate::resolve::{Expanded, ForwardReader, Resolver, RunAs, Target};
use posthorn_mail::Config;
use posthorn_mail::aliases::Aliases;
use posthorn_mail::users::MailUser;
use posthorn_spool::state::{Journal, Key, State};
use posthorn_spool::{QueueId, Spool, qfile};
use posthorn_sys::{error, info, warning};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Everything the workers share.
pub struct Ctx {
    pub cfg: Config,
    pub spool: Spool,
    pub agent: Agent,
    aliases: Mutex<AliasCache>,
    /// Remote deliveries running per destination.
    pub dest: crate::remote::DestLimit,
    /// Idle remote(8) sessions with their connections open.
    pub pool: crate::remote::Pool,
    /// Local deliveries running per recipient.
    pub local: crate::throttle::LocalLimit,
    /// The DKIM signing keys, read at start (dkim.rs).
    pub dkim: crate::dkim::Keys,
}

#[derive(Default)]
struct AliasCache {
    stamp: Option<(SystemTime, u64, u64)>,
    table: Arc<Aliases>,
    run_as: Option<RunAs>,
}

/// How a pass over a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Every recipient is finished; the message is gone.
    Done,
    /// Try again at this Unix time.
    Deferred(u64),
    /// Another qrun holds the message.
    Busy,
    /// Some local deliveries wait for a slot of this recipient (a key of
    /// `throttle::key`); the rest of the pass is done and recorded.
    Throttled(String),
    /// The message is no longer there.
    Gone,
}

impl Ctx {
    /// new - the shared context.
    pub fn new(cfg: Config, spool: Spool, agent: Agent, dkim: crate::dkim::Keys) -> Ctx {
        let limit = cfg.remote.destination_concurrency;
        let local = crate::throttle::LocalLimit::new(cfg.local_concurrency());
        Ctx {
            cfg,
            spool,
            agent,
            aliases: Mutex::new(AliasCache::default()),
            dest: crate::remote::DestLimit::new(limit),
            pool: crate::remote::Pool::default(),
            local,
            dkim,
        }
    }

    /// aliases - the aliases table, re-read when the file changes; problems
    /// are logged by file and line on each re-read. Also whose rights its
    /// commands and files get: the file's owner, or nobody for a root-owned
    /// file (Postfix's default_privs); with no root, qrun's own user.
    fn aliases(&self) -> (Arc<Aliases>, RunAs) {
        let Ok(mut c) = self.aliases.lock() else {
            return (Arc::new(Aliases::default()), RunAs::Qrun);
        };
        let Some(path) = &self.cfg.aliases else {
            return (c.table.clone(), RunAs::Qrun);
        };
        let meta = std::fs::metadata(path).ok();
        let stamp = meta.as_ref().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        });
        if c.stamp != stamp || c.run_as.is_none() {
            let table = Aliases::load(path).unwrap_or_else(|e| {
                warning!("{}: cannot read: {e}", path.display());
                Aliases::default()
            });
            for p in &table.problems {
                warning!("{p}");
            }
            let run_as = match &meta {
                _ if self.agent.root.is_none() => RunAs::Qrun,
                Some(m) if m.uid() == 0 => RunAs::Nobody,
                Some(m) => match posthorn_sys::privs::lookup_uid(m.uid()).ok().flatten() {
                    Some(a) => RunAs::User {
                        name: a.name,
                        uid: a.uid,
                        gid: a.gid,
                    },
                    None => RunAs::Nobody,
                },
                None => RunAs::Nobody,
            };
            *c = AliasCache {
                stamp,
                table: Arc::new(table),
                run_as: Some(run_as),
            };
        }
        (c.table.clone(), c.run_as.clone().unwrap_or(RunAs::Nobody))
    }
}

impl ForwardReader for Agent {
    fn read(&self, user: &MailUser) -> Result<Option<String>, String> {
        self.read_forward(user)
    }
}

/// uncount - a message has left the spool: its submitter may queue
/// another (queue.uid_max_*; names left over are swept).
pub fn uncount(ctx: &Ctx, q: &qfile::QueueFile, id: &QueueId) {
    let qc = &ctx.cfg.queue;
    if qc.uid_max_messages > 0 || qc.uid_max_bytes > 0 {
        ctx.spool.uncount(q.uid, id, q.msg_size);
    }
}

/// Most Received: fields a message may carry before it counts as a loop.
const MAX_HOPS: usize = 50;

/// count_hops - the Received: fields in the message header (its first
/// 256 KiB at most).
fn count_hops(f: &mut std::fs::File, offset: u64, size: u64) -> usize {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return 0;
    }
    let mut r = std::io::BufReader::new(f.take(size.min(256 * 1024)));
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return n,
            Ok(_) => {}
        }
        if line == b"\n" || line == b"\r\n" {
            return n;
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            n += 1;
        }
    }
}

/// backoff - Postfix's schedule: min_backoff doubling per attempt, capped.
pub fn backoff(cfg: &Config, attempts: u32) -> u64 {
    let min = cfg.queue.min_backoff.as_secs().max(1);
    let max = cfg.queue.max_backoff.as_secs().max(min);
    min.saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(max)
}

/// orig_to - the `, orig_to=<...>` log field, when it differs from `to`.
fn orig_to(to: &str, orig: &str) -> String {
    if to.eq_ignore_ascii_case(orig) {
        String::new()
    } else {
        format!(", orig_to=<{orig}>")
    }
}

/// wants_notice - DSN NOTIFY: absent means the default (failures only).
fn wants_notice(notify: Option<&str>, what: &str) -> bool {
    match notify {
        None => what == "FAILURE",
        Some(n) => n.split(',').any(|w| w.trim().eq_ignore_ascii_case(what)),
    }
}

/// process - one pass over message `id`.
pub fn process(ctx: &Ctx, id: &QueueId) -> Pass {
    let path = ctx.spool.message(id);
    let mut f = match posthorn_sys::fsio::open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Pass::Gone,
        Err(e) => {
            error!("{id}: cannot open queue file: {e}");
            return Pass::Deferred(posthorn_mail::date::unix_now() + backoff(&ctx.cfg, 1));
        }
    };
    if f.try_lock().is_err() {
        return Pass::Busy;
    }
    // Another runner may have finished it between our open and our lock.
    if !path.exists() {
        return Pass::Gone;
    }
    let q = match qfile::read_header(&mut f) {
        Ok(q) => q,
        Err(m) => {
            let corrupt = ctx.spool.root.join("corrupt");
            let _ = std::fs::create_dir_all(&corrupt);
            let _ = std::fs::rename(&path, corrupt.join(id.as_str()));
            error!(
                "{id}: corrupt queue file ({m}); moved to {}",
                corrupt.display()
            );
            return Pass::Gone;
        }
    };
    let state_path = ctx.spool.state_file(id);
    let mut st = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => {
            error!("{id}: cannot read delivery records: {e}");
            return Pass::Deferred(posthorn_mail::date::unix_now() + backoff(&ctx.cfg, 1));
        }
    };
    let mut journal = Journal::new(&state_path);
    let env = &q.envelope;
    let picked_up = posthorn_mail::date::since_epoch().as_secs_f64();
    info!(
        "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
        env.sender,
        q.msg_size,
        env.recipients.len()
    );

    let (aliases, aliases_run_as) = ctx.aliases();
    let resolver = Resolver {
        cfg: &ctx.cfg,
        aliases: &aliases,
        aliases_run_as,
        forward: &ctx.agent,
    };
    // A message that has passed through too many hosts is looping somewhere:
    // every recipient fails (Postfix's hopcount_limit, 50).
    let hops = count_hops(&mut f, q.msg_offset, q.msg_size);
    let expansions: Vec<Vec<Expanded>> = env
        .recipients
        .iter()
        .map(|r| {
            if hops > MAX_HOPS {
                vec![Expanded {
                    key: format!("error:{}", r.address.to_ascii_lowercase()),
                    target: Target::Fail {
                        address: r.address.clone(),
                        dsn: "5.4.6",
                        text: format!(
                            "too many hops ({hops} Received: header fields): a mail loop"
                        ),
                    },
                    errors_to: None,
                }]
            } else {
                resolver.expand(&r.address)
            }
        })
        .collect();
    let pending = expansions
        .iter()
        .enumerate()
        .flat_map(|(i, ex)| ex.iter().map(move |e| (i, e.key.clone())))
        .filter(|k| !st.is_finished(k))
        .count();

    let now = posthorn_mail::date::unix_now();
    let delay = format!(
        "{:.2}",
        (posthorn_mail::date::since_epoch().as_secs_f64() - q.arrival_secs()).max(0.0)
    );
    let mut deferred_now: Vec<Key> = Vec::new();
    let mut remote_jobs: Vec<(Key, String)> = Vec::new();
    // A recipient whose delivery slots were all taken: its targets wait.
    let mut throttled: Option<String> = None;
    let mut errors_to: HashMap<Key, Option<String>> = HashMap::new();
    for (i, ex) in expansions.iter().enumerate() {
        let rcpt = &env.recipients[i];
        for e in ex {
            let key: Key = (i, e.key.clone());
            errors_to.insert(key.clone(), e.errors_to.clone());
            if st.is_finished(&key) {
                continue;
            }
            let outcome = match &e.target {
                Target::Fail { address, dsn, text } => {
                    info!(
                        "{id}: to=<{address}>{}, relay=local, delay={delay}, dsn={dsn}, status=bounced ({text})",
                        orig_to(address, &rcpt.address)
                    );
                    Outcome::Failed {
                        dsn: dsn.to_string(),
                        text: text.clone(),
                    }
                }
                Target::Defer { address, dsn, text } => {
                    info!(
                        "{id}: to=<{address}>{}, relay=local, delay={delay}, dsn={dsn}, status=deferred ({text})",
                        orig_to(address, &rcpt.address)
                    );
                    Outcome::Deferred {
                        dsn: dsn.to_string(),
                        text: text.clone(),
                    }
                }
                Target::Remote { address } => {
                    // Sent after the local deliveries, one helper run per domain.
                    remote_jobs.push((key.clone(), address.clone()));
                    continue;
                }
                t => {
                    let k = crate::throttle::key(t);
                    let Some(_slot) = ctx.local.try_acquire(&k) else {
                        throttled.get_or_insert(k);
                        continue;
                    };
                    ctx.agent.deliver(
                        id.as_str(),
                        q.arrival_secs(),
                        &env.sender,
                        &rcpt.address,
                        t,
                        &mut f,
                        q.msg_offset,
                        q.msg_size,
                    )
                }
            };
            match outcome {
                Outcome::Delivered => {
                    journal.delivered(&key);
                    st.done.insert(key.clone());
                }
                Outcome::Deferred { dsn, text } => {
                    journal.deferred(&key, &dsn, &text);
                    st.deferred.insert(key.clone(), (dsn, text));
                    deferred_now.push(key.clone());
                }
                Outcome::Failed { dsn, text } => {
                    journal.failed(&key, &dsn, &text);
                    st.failed.insert(key.clone(), (dsn, text));
                }
            }
            // With more than one delivery to make, each outcome is made
            // durable before the next, so a crash repeats none of them.
            if pending > 1
                && let Err(e) = journal.sync()
            {
                error!("{id}: cannot record delivery state: {e}");
                return Pass::Deferred(now + backoff(&ctx.cfg, 1));
            }
        }
    }

    if !remote_jobs.is_empty() {
        let r = RemoteRun {
            ctx,
            id,
            q: &q,
            picked_up,
        };
        if let Err(e) = r.run(
            &remote_jobs,
            &mut f,
            &mut st,
            &mut journal,
            &mut deferred_now,
        ) {
            error!("{id}: cannot record delivery state: {e}");
            return Pass::Deferred(now + backoff(&ctx.cfg, 1));
        }
    }

    // Too old: what is still deferred fails now.
    let lifetime = ctx.cfg.queue.lifetime.as_secs();
    if !deferred_now.is_empty() && now.saturating_sub(q.arrival) >= lifetime {
        for k in &deferred_now {
            if let Some((dsn, text)) = st.deferred.remove(k) {
                let days = lifetime as f64 / 86400.0;
                let text = format!("message expired after {days:.1} days in the queue: {text}");
                match st.remote_of(k) {
                    Some((mta, diag)) => journal.failed_remote(k, &dsn, &text, mta, diag),
                    None => journal.failed(k, &dsn, &text),
                }
                info!(
                    "{id}: to=<{}>, relay=none, delay={delay}, dsn={dsn}, status=expired ({text})",
                    env.recipients[k.0].address
                );
                st.failed.insert(k.clone(), (dsn, text));
            }
        }
        deferred_now.clear();
    }

    let warning = ctx.cfg.queue.delay_warning.as_secs();
    if warning > 0 && !deferred_now.is_empty() && now.saturating_sub(q.arrival) >= warning {
        warn_of_delay(ctx, id, &q, &mut f, &mut st, &mut journal, &deferred_now);
    }
    let bounced = send_bounces(ctx, id, &q, &mut f, &mut st, &mut journal, &errors_to);
    let notified_all = st.failed.keys().all(|k| st.notified.contains(k));
    let finished = expansions.iter().enumerate().all(|(i, ex)| {
        ex.iter().all(|e| {
            st.done.contains(&(i, e.key.clone())) || st.failed.contains_key(&(i, e.key.clone()))
        })
    });
    // All done: the records in the journal would describe a message that is
    // gone, so they are not synced (one fdatasync less per message).
    if bounced.is_ok() && finished && notified_all {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&state_path);
                uncount(ctx, &q, id);
                let _ = std::fs::remove_file(ctx.spool.dkim_file(id));
                info!("{id}: removed");
                return Pass::Done;
            }
            Err(e) => error!("{id}: cannot remove queue file: {e}"),
        }
    }
    let pass = match (bounced, throttled) {
        (Err(pass), _) => pass,
        // Not an attempt that failed: no backoff; the scheduler starts the
        // next pass when the recipient has a free slot.
        (Ok(()), Some(k)) => Pass::Throttled(k),
        (Ok(()), None) => {
            let attempts = st.attempts + 1;
            let next = now + backoff(&ctx.cfg, attempts);
            journal.schedule(next, attempts);
            Pass::Deferred(next)
        }
    };
    if let Err(e) = journal.sync() {
        error!("{id}: cannot record delivery state: {e}");
    }
    pass
}

/// Addresses at one domain, each with the targets (keys) it stands for.
type AddressKeys = Vec<(String, Vec<Key>)>;

/// One message's remote deliveries in this pass.
struct RemoteRun<'a> {
    ctx: &'a Ctx,
    id: &'a QueueId,
    q: &'a qfile::QueueFile,
    /// When this pass picked the message up (Unix seconds).
    picked_up: f64,
}

impl RemoteRun<'_> {
    /// defer_unsent - addresses that could not be sent for a reason of
    /// ours (the relay login, a DKIM key): each deferred with 4.3.5.
    fn defer_unsent<'a>(
        &self,
        addrs: impl Iterator<Item = &'a (String, Vec<Key>)>,
        why: String,
        st: &mut State,
        journal: &mut Journal,
        deferred_now: &mut Vec<Key>,
    ) {
        let o = RemoteOutcome {
            status: 'W',
            dsn: "4.3.5".into(),
            text: why,
            mta: String::new(),
            diag: String::new(),
        };
        let now = posthorn_mail::date::since_epoch().as_secs_f64();
        for (addr, keys) in addrs {
            self.log(addr, keys, "none", now, 0.0, 0.0, &o);
            self.record(keys, &o, st, journal, deferred_now);
        }
    }

    /// run - send to every remote target not yet finished: one `remote`
    /// run per domain, each address once; every outcome is logged and
    /// fdatasync'd as it arrives, so a crash resends at most the
    /// transaction in flight.
    fn run(
        &self,
        jobs: &[(Key, String)],
        f: &mut std::fs::File,
        st: &mut State,
        journal: &mut Journal,
        deferred_now: &mut Vec<Key>,
    ) -> std::io::Result<()> {
        let env = &self.q.envelope;
        // domain -> address -> keys (one address may come from several recipients)
        let mut by_domain: Vec<(String, AddressKeys)> = Vec::new();
        for (key, addr) in jobs {
            let domain = addr
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            let di = match by_domain.iter().position(|(d, _)| *d == domain) {
                Some(i) => i,
                None => {
                    by_domain.push((domain, Vec::new()));
                    by_domain.len() - 1
                }
            };
            let list = &mut by_domain[di].1;
            match list.iter_mut().find(|(a, _)| a.eq_ignore_ascii_case(addr)) {
                Some((_, keys)) => keys.push(key.clone()),
                None => list.push((addr.clone(), vec![key.clone()])),
            }
        }
        // The DKIM-Signature fields, made once before the first attempt;
        // when they cannot be made, nothing goes out unsigned: all wait.
        let signature =
            match crate::dkim::fields(&self.ctx.dkim, &self.ctx.spool, self.id, self.q, f) {
                Ok(s) => s,
                Err(e) => {
                    let all = by_domain.iter().flat_map(|(_, l)| l);
                    self.defer_unsent(all, e, st, journal, deferred_now);
                    return journal.sync();
                }
            };
        let helper = self.ctx.cfg.helper("remote");
        for (domain, list) in by_domain {
            let rcpts: Vec<posthorn_spool::envelope::Recipient> = list
                .iter()
                .map(|(addr, keys)| {
                    let orig = &env.recipients[keys[0].0];
                    posthorn_spool::envelope::Recipient {
                        address: addr.clone(),
                        notify: orig.notify.clone(),
                        orcpt: orig.orcpt.clone(),
                    }
                })
                .collect();
            // The destination is the route: every domain behind one relayhost counts once.
            let cfg = &self.ctx.cfg;
            let dest = match (cfg.transport_for(&domain), &cfg.relayhost) {
                (Some(r), _) => r.to_string(),
                (None, Some(r)) => r.to_ascii_lowercase(),
                (None, None) => domain.clone(),
            };
            // The relay login, read here (as the spool's owner) and handed
            // to the helper, which runs as nobody and can read no file of ours.
            let login = match (&cfg.relayhost, cfg.transport_for(&domain)) {
                (Some(_), None) => match relay_login(cfg) {
                    Ok(l) => l,
                    Err(e) => {
                        self.defer_unsent(list.iter(), e, st, journal, deferred_now);
                        journal.sync()?;
                        continue;
                    }
                },
                _ => None,
            };
            let _slot = self.ctx.dest.acquire(&dest);
            let started = posthorn_mail::date::since_epoch().as_secs_f64();
            let mut reported = vec![false; list.len()];
            let mut io_err: Option<std::io::Error> = None;
            let res = crate::remote::send(
                &self.ctx.agent,
                &self.ctx.pool,
                &helper,
                &dest,
                self.id.as_str(),
                &domain,
                env,
                &rcpts,
                &signature,
                f,
                self.q.msg_offset,
                self.q.msg_size,
                login.as_ref(),
                |rep| {
                    reported[rep.index] = true;
                    let (addr, keys) = &list[rep.index];
                    let o = RemoteOutcome {
                        status: rep.status,
                        dsn: rep.dsn.clone(),
                        text: rep.text.clone(),
                        mta: rep.mta.clone(),
                        diag: rep.diag.clone(),
                    };
                    let relay = if rep.conn_use > 1 {
                        // Postfix's field for a reused connection.
                        format!("{}, conn_use={}", rep.relay, rep.conn_use)
                    } else {
                        rep.relay.clone()
                    };
                    self.log(
                        addr,
                        keys,
                        &relay,
                        started,
                        rep.conn_secs,
                        rep.xfer_secs,
                        &o,
                    );
                    self.record(keys, &o, st, journal, deferred_now);
                    if let Err(e) = journal.sync() {
                        io_err.get_or_insert(e);
                    }
                },
            );
            if let Some(e) = io_err {
                return Err(e);
            }
            let why = match res {
                Ok(()) => "the remote delivery agent gave no result".to_string(),
                Err(e) => e,
            };
            for (i, (addr, keys)) in list.iter().enumerate() {
                if reported[i] {
                    continue;
                }
                let o = RemoteOutcome {
                    status: 'W',
                    dsn: "4.3.0".into(),
                    text: why.clone(),
                    mta: String::new(),
                    diag: String::new(),
                };
                self.log(addr, keys, "none", started, 0.0, 0.0, &o);
                self.record(keys, &o, st, journal, deferred_now);
            }
            journal.sync()?;
        }
        Ok(())
    }

    /// log - Postfix's line for one recipient attempt; delays are time
    /// queued before this pass, in qrun, connection setup, transmission.
    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        addr: &str,
        keys: &[Key],
        relay: &str,
        started: f64,
        c: f64,
        d: f64,
        o: &RemoteOutcome,
    ) {
        let now = posthorn_mail::date::since_epoch().as_secs_f64();
        let arrival = self.q.arrival_secs();
        let a = (self.picked_up - arrival).max(0.0);
        let b = (started - self.picked_up).max(0.0);
        let status = match o.status {
            'S' | 'R' => "sent",
            'W' => "deferred",
            _ => "bounced",
        };
        for k in keys {
            info!(
                "{}: to=<{addr}>{}, relay={relay}, delay={:.2}, delays={a:.2}/{b:.2}/{c:.2}/{d:.2}, dsn={}, status={status} ({})",
                self.id,
                orig_to(addr, &self.q.envelope.recipients[k.0].address),
                (now - arrival).max(0.0),
                o.dsn,
                o.text
            );
        }
    }

    /// record - the outcome into the journal and the in-memory state.
    fn record(
        &self,
        keys: &[Key],
        o: &RemoteOutcome,
        st: &mut State,
        journal: &mut Journal,
        deferred_now: &mut Vec<Key>,
    ) {
        for k in keys {
            match o.status {
                'S' | 'R' => {
                    if o.status == 'R' {
                        journal.relayed(k);
                        st.relayed.insert(k.clone());
                    }
                    journal.delivered(k);
                    st.deferred.remove(k);
                    st.done.insert(k.clone());
                }
                'W' => {
                    journal.deferred_remote(k, &o.dsn, &o.text, &o.mta, &o.diag);
                    st.deferred
                        .insert(k.clone(), (o.dsn.clone(), o.text.clone()));
                    deferred_now.push(k.clone());
                }
                _ => {
                    journal.failed_remote(k, &o.dsn, &o.text, &o.mta, &o.diag);
                    st.deferred.remove(k);
                    st.failed.insert(k.clone(), (o.dsn.clone(), o.text.clone()));
                }
            }
            if o.mta.is_empty() && o.diag.is_empty() {
                st.remote.remove(k);
            } else {
                st.remote.insert(k.clone(), (o.mta.clone(), o.diag.clone()));
            }
        }
    }
}

/// relay_login - `[relay] user` and the first line of `password_file`.
fn relay_login(cfg: &Config) -> Result<Option<(String, String)>, String> {
    let r = &cfg.remote;
    match (&r.relay_user, &r.relay_password_file) {
        (Some(u), Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("relay password file {}: cannot read: {e}", f.display()))?;
            let pass = text.lines().next().unwrap_or("").to_string();
            if pass.contains(['\t', '\0']) {
                return Err(format!(
                    "relay password file {}: a tab or NUL in the password",
                    f.display()
                ));
            }
            Ok(Some((u.clone(), pass)))
        }
        _ => Ok(None),
    }
}

/// One remote outcome as qrun keeps it.
struct RemoteOutcome {
    status: char,
    dsn: String,
    text: String,
    mta: String,
    diag: String,
}

/// warn_of_delay - one "still being retried" DSN to the sender for the
/// deferred targets not yet warned about whose NOTIFY allows it (absent
/// NOTIFY does, as in Postfix); never to <> or for a double bounce. A
/// failure to queue it is logged and tried again on the next pass.
fn warn_of_delay(
    ctx: &Ctx,
    id: &QueueId,
    q: &qfile::QueueFile,
    f: &mut std::fs::File,
    st: &mut State,
    journal: &mut Journal,
    deferred: &[Key],
) {
    let env = &q.envelope;
    let double_bounce = format!("{DOUBLE_BOUNCE}@{}", ctx.cfg.hostname);
    let mut keys: Vec<Key> = deferred
        .iter()
        .filter(|k| !st.warned.contains(*k))
        .filter(|k| match env.recipients[k.0].notify.as_deref() {
            None => true,
            Some(n) => wants_notice(Some(n), "DELAY"),
        })
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return;
    }
    if env.sender.is_empty() || env.sender.eq_ignore_ascii_case(&double_bounce) {
        for k in &keys {
            journal.warned(k);
            st.warned.insert(k.clone());
        }
        return;
    }
    let reports: Vec<Failure> = keys
        .iter()
        .map(|k| {
            let r = &env.recipients[k.0];
            let (dsn, text) = st.deferred.get(k).cloned().unwrap_or_default();
            let (remote_mta, diagnostic) = match st.remote_of(k) {
                Some((m, d)) => (
                    Some(m.clone()).filter(|m| !m.is_empty()),
                    Some(d.clone()).filter(|d| !d.is_empty()),
                ),
                None => (None, None),
            };
            Failure {
                final_rcpt: match k.1.split_once(':') {
                    Some(("remote", a)) => a.to_string(),
                    _ => r.address.clone(),
                },
                original: r.orcpt.clone().or_else(|| Some(r.address.clone())),
                dsn,
                text,
                delivered: false,
                relayed: false,
                delayed: true,
                remote_mta,
                diagnostic,
            }
        })
        .collect();
    let original = match bounce::read_original(f, q.msg_offset, q.msg_size, Return::Headers) {
        Ok((o, _)) => o,
        Err(e) => {
            error!("{id}: cannot read the message for a delay warning: {e}");
            return;
        }
    };
    let text = bounce::compose(
        &ctx.cfg,
        id,
        &env.sender,
        q.arrival,
        env.envid.as_deref(),
        &reports,
        &original,
        Return::Headers,
    );
    match bounce::enqueue(&ctx.spool, "", &env.sender, &text) {
        Ok(bid) => {
            info!("{id}: sender delay notification: {bid}");
            for k in &keys {
                journal.warned(k);
                st.warned.insert(k.clone());
            }
        }
        Err(e) => error!("{id}: cannot queue a delay warning: {e}"),
    }
}

/// send_bounces - one DSN per destination and kind for failures not yet
/// reported and for deliveries whose recipient asked for NOTIFY=SUCCESS;
/// the caller syncs the journal (a report is queued before its N record,
/// so a crash between them sends it twice, never not at all).
fn send_bounces(
    ctx: &Ctx,
    id: &QueueId,
    q: &qfile::QueueFile,
    f: &mut std::fs::File,
    st: &mut State,
    journal: &mut Journal,
    errors_to: &HashMap<Key, Option<String>>,
) -> Result<(), Pass> {
    let env = &q.envelope;
    let now = posthorn_mail::date::unix_now();
    let double_bounce = format!("{DOUBLE_BOUNCE}@{}", ctx.cfg.hostname);
    // (destination, success?) -> keys
    let mut groups: HashMap<(String, bool), Vec<Key>> = HashMap::new();
    let mut silent: Vec<Key> = Vec::new();
    let mut failed: Vec<&Key> = st
        .failed
        .keys()
        .filter(|k| !st.notified.contains(*k))
        .collect();
    failed.sort();
    for k in failed {
        if !wants_notice(env.recipients[k.0].notify.as_deref(), "FAILURE") {
            silent.push(k.clone());
            continue;
        }
        let to = errors_to
            .get(k)
            .cloned()
            .flatten()
            .unwrap_or_else(|| env.sender.clone());
        groups.entry((to, false)).or_default().push(k.clone());
    }
    // Success reports go to the sender only, and never about mail from <>.
    let mut done: Vec<&Key> = st
        .done
        .iter()
        .filter(|k| !st.notified.contains(*k))
        .filter(|k| {
            env.recipients[k.0]
                .notify
                .as_deref()
                .is_some_and(|n| wants_notice(Some(n), "SUCCESS"))
        })
        .collect();
    done.sort();
    for k in done {
        // A remote delivery hands the duty on with the NOTIFY parameter
        // (RFC 3461 §4.1): the next server reports success, not we; unless
        // it does not do DSN, and then we report "relayed".
        let remote = k.1.starts_with("remote:") && !st.relayed.contains(k);
        if remote || env.sender.is_empty() || env.sender.eq_ignore_ascii_case(&double_bounce) {
            silent.push(k.clone());
        } else {
            groups
                .entry((env.sender.clone(), true))
                .or_default()
                .push(k.clone());
        }
    }
    for k in &silent {
        journal.notified(k);
        st.notified.insert(k.clone());
    }
    let mut groups: Vec<((String, bool), Vec<Key>)> = groups.into_iter().collect();
    groups.sort();
    for ((to, success), ks) in groups {
        let (sender, to) = if !success && env.sender.eq_ignore_ascii_case(&double_bounce) {
            // A double bounce that failed: nobody is left to tell.
            info!("{id}: undeliverable double bounce discarded");
            for k in &ks {
                journal.notified(k);
                st.notified.insert(k.clone());
            }
            continue;
        } else if to.is_empty() {
            // A bounce that bounced: tell the postmaster, never <>.
            let pm = if ctx.cfg.postmaster.contains('@') {
                ctx.cfg.postmaster.clone()
            } else {
                format!("{}@{}", ctx.cfg.postmaster, ctx.cfg.hostname)
            };
            (double_bounce.clone(), pm)
        } else {
            (String::new(), to)
        };
        let reports: Vec<Failure> = ks
            .iter()
            .map(|k| {
                let (dsn, text) = if success {
                    ("2.0.0".to_string(), "delivered".to_string())
                } else {
                    st.failed.get(k).cloned().unwrap_or_default()
                };
                let r = &env.recipients[k.0];
                let final_rcpt = match k.1.split_once(':') {
                    Some(("remote", a)) | Some(("error", a)) => a.to_string(),
                    _ => r.address.clone(),
                };
                let (remote_mta, diagnostic) = match st.remote_of(k) {
                    Some((m, d)) if !success => (
                        Some(m.clone()).filter(|m| !m.is_empty()),
                        Some(d.clone()).filter(|d| !d.is_empty()),
                    ),
                    _ => (None, None),
                };
                let (dsn, text) = if success && st.relayed.contains(k) {
                    (
                        dsn,
                        "relayed to a server that does not do DSN: no further notices".to_string(),
                    )
                } else {
                    (dsn, text)
                };
                Failure {
                    final_rcpt,
                    original: r.orcpt.clone().or_else(|| Some(r.address.clone())),
                    dsn,
                    text,
                    delivered: success,
                    relayed: success && st.relayed.contains(k),
                    delayed: false,
                    remote_mta,
                    diagnostic,
                }
            })
            .collect();
        // Success reports carry the headers only, as Postfix sends them.
        let ret = if env.ret.as_deref() == Some("FULL") && !success {
            Return::Full
        } else {
            Return::Headers
        };
        let (original, ret) = match bounce::read_original(f, q.msg_offset, q.msg_size, ret) {
            Ok(x) => x,
            Err(e) => {
                error!("{id}: cannot read the message for a bounce: {e}");
                return Err(Pass::Deferred(now + backoff(&ctx.cfg, 1)));
            }
        };
        let text = bounce::compose(
            &ctx.cfg,
            id,
            &to,
            q.arrival,
            env.envid.as_deref(),
            &reports,
            &original,
            ret,
        );
        match bounce::enqueue(&ctx.spool, &sender, &to, &text) {
            Ok(bid) => {
                let what = if success {
                    "sender delivery status notification"
                } else {
                    "sender non-delivery notification"
                };
                info!("{id}: {what}: {bid}");
                for k in &ks {
                    journal.notified(k);
                    st.notified.insert(k.clone());
                }
            }
            Err(e) => {
                error!("{id}: cannot queue a bounce: {e}");
                return Err(Pass::Deferred(now + backoff(&ctx.cfg, 1)));
            }
        }
    }
    Ok(())
}
