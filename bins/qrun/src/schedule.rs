//! schedule - which message to work on when: a single pass, or the
//! daemon loop woken by the trigger FIFO and by a timer for retries.

use crate::process::{self, Ctx, Pass};
use posthorn_spool::QueueId;
use posthorn_spool::state::State;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{info, warning};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Temporary files older than this are left over from a crash.
const TMP_MAX_AGE: Duration = Duration::from_secs(86400);

/// scan - the queue IDs in incoming/, oldest first.
fn scan(ctx: &Ctx) -> Result<Vec<QueueId>, Exit> {
    let rd = std::fs::read_dir(ctx.spool.incoming()).map_err(|e| {
        Exit::from_io(
            format!("cannot read {}", ctx.spool.incoming().display()),
            &e,
        )
    })?;
    let mut ids: Vec<QueueId> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| QueueId::try_from(n).ok())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// sweep - remove tmp/ files a crash left behind, and delivery records
/// per-uid counts and signatures whose message is gone.
fn sweep(ctx: &Ctx) {
    let now = SystemTime::now();
    if let Ok(rd) = std::fs::read_dir(ctx.spool.tmp()) {
        for e in rd.filter_map(|e| e.ok()) {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > TMP_MAX_AGE);
            if old.unwrap_or(false) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for dir in [ctx.spool.state(), ctx.spool.dkim()] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| QueueId::try_from(n).ok()) else {
                continue;
            };
            // A held message keeps its records for when it is released.
            if !ctx.spool.message(&id).exists() && !ctx.spool.held(&id).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    ctx.spool.sweep_counts();
}

/// Messages whose pass left local deliveries waiting for a slot of their
/// recipient (`Pass::Throttled`), with that recipient.
#[derive(Default)]
struct Parked(Vec<(QueueId, String)>);

impl Parked {
    /// ready - take out the messages whose recipient has free slots now,
    /// no more per recipient than it has free (the others would only be
    /// turned away again).
    fn ready(&mut self, ctx: &Ctx) -> Vec<QueueId> {
        let mut room: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        self.0.retain(|(id, key)| {
            let free = room
                .entry(key.clone())
                .or_insert_with(|| ctx.local.free(key));
            if *free == 0 {
                return true;
            }
            *free -= 1;
            out.push(id.clone());
            false
        });
        out
    }
}

/// run_all - process `ids` with the configured number of workers; a
/// message whose recipient's slots are taken waits, without a worker, for
/// a free one, while the workers go on with other messages.
fn run_all(ctx: &Ctx, ids: Vec<QueueId>) {
    let work = Mutex::new((VecDeque::from(ids), Parked::default()));
    let n = ctx.cfg.queue.parallel;
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                loop {
                    let next = {
                        let Ok(mut w) = work.lock() else { break };
                        let (queue, parked) = &mut *w;
                        if queue.is_empty() {
                            queue.extend(parked.ready(ctx));
                        }
                        match queue.pop_front() {
                            Some(id) => Some(id),
                            None if parked.0.is_empty() => break,
                            // All that is left waits for slots busy in other workers.
                            None => None,
                        }
                    };
                    let Some(id) = next else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    if let Pass::Throttled(key) = process::process(ctx, &id)
                        && let Ok(mut w) = work.lock()
                    {
                        w.1.0.push((id, key));
                    }
                }
            });
        }
    });
}

/// once - every message now, deferred ones included; then the bounces
/// that pass created, a few rounds at most.
pub fn once(ctx: &Ctx) -> Result<(), Exit> {
    sweep(ctx);
    let mut seen: HashSet<QueueId> = HashSet::new();
    for _ in 0..5 {
        let ids: Vec<QueueId> = scan(ctx)?
            .into_iter()
            .filter(|i| !seen.contains(i))
            .collect();
        if ids.is_empty() {
            break;
        }
        seen.extend(ids.iter().cloned());
        run_all(ctx, ids);
    }
    ctx.pool.close();
    Ok(())
}

/// What wakes the daemon loop.
enum Event {
    Wake,
    /// `sendmail -q` asked for deferred mail to be tried now.
    Flush,
    Finished(QueueId, Pass),
}

/// daemon - run until killed: pick up new mail on each wake-up, retry
/// deferred mail when it is due, rescan at least every scan_interval.
pub fn daemon(ctx: &Ctx) -> Result<(), Exit> {
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(ctx.spool.lock())
        .map_err(|e| Exit::from_io(format!("cannot open {}", ctx.spool.lock().display()), &e))?;
    if lock.try_lock().is_err() {
        return Err(Exit::new(
            exit::TEMPFAIL,
            format!(
                "another qrun is running ({} is locked)",
                ctx.spool.lock().display()
            ),
        ));
    }
    let _ = lock.set_len(0);
    let _ = std::io::Write::write_all(&mut &lock, format!("{}\n", std::process::id()).as_bytes());
    // Read-write, so the FIFO never reports end-of-file when writers come and go.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ctx.spool.trigger())
        .map_err(|e| Exit::from_io(format!("cannot open {}", ctx.spool.trigger().display()), &e))?;
    sweep(ctx);
    info!(
        "daemon started: spool {}, {} parallel deliveries",
        ctx.spool.root.display(),
        ctx.cfg.queue.parallel
    );

    let (ev_tx, ev_rx) = mpsc::channel::<Event>();
    let (job_tx, job_rx) = mpsc::channel::<QueueId>();
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|s| -> Result<(), Exit> {
        let wake_tx = ev_tx.clone();
        s.spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                match fifo.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(100)),
                    Ok(n) => {
                        let ev = if buf[..n].contains(&b'f') {
                            Event::Flush
                        } else {
                            Event::Wake
                        };
                        if wake_tx.send(ev).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        warning!("trigger FIFO: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        });
        for _ in 0..ctx.cfg.queue.parallel {
            let tx = ev_tx.clone();
            let rx = &job_rx;
            s.spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(id) = job else { return };
                    let pass = process::process(ctx, &id);
                    if tx.send(Event::Finished(id, pass)).is_err() {
                        return;
                    }
                }
            });
        }
        let mut due: HashMap<QueueId, u64> = HashMap::new();
        let mut inflight: HashSet<QueueId> = HashSet::new();
        let mut parked = Parked::default();
        let mut last_sweep = Instant::now();
        let mut must_scan = true;
        let mut flush = false;
        loop {
            if must_scan {
                must_scan = false;
                let now = posthorn_mail::date::unix_now();
                let ids = scan(ctx)?;
                let present: HashSet<&QueueId> = ids.iter().collect();
                due.retain(|k, _| present.contains(k));
                for id in &ids {
                    if inflight.contains(id) || parked.0.iter().any(|(p, _)| p == id) {
                        continue;
                    }
                    if flush {
                        due.insert(id.clone(), 0);
                    }
                    let when = *due.entry(id.clone()).or_insert_with(|| {
                        State::load(&ctx.spool.state_file(id))
                            .map(|s| s.next_attempt)
                            .unwrap_or(0)
                    });
                    if when <= now {
                        inflight.insert(id.clone());
                        if job_tx.send(id.clone()).is_err() {
                            return Err(Exit::new(exit::SOFTWARE, "worker threads are gone"));
                        }
                    }
                }
                flush = false;
                if last_sweep.elapsed() >= ctx.cfg.queue.scan_interval {
                    sweep(ctx);
                    last_sweep = Instant::now();
                }
            }
            // Sleep until the next retry is due, a rescan is owed, or something happens.
            let now = posthorn_mail::date::unix_now();
            let next_due = due
                .iter()
                .filter(|(k, _)| !inflight.contains(*k))
                .map(|(_, t)| *t)
                .min();
            let mut wait = ctx.cfg.queue.scan_interval;
            if let Some(t) = next_due {
                wait = wait.min(Duration::from_secs(t.saturating_sub(now)));
            }
            // A slot frees when a delivery ends, which no event announces
            // before its message is done: look again soon.
            if !parked.0.is_empty() {
                wait = wait.min(Duration::from_millis(500));
            }
            let first = match ev_rx.recv_timeout(wait.max(Duration::from_millis(10))) {
                Ok(ev) => Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Exit::new(exit::SOFTWARE, "event channel closed"));
                }
            };
            if first.is_none() {
                must_scan = true;
            }
            // Sessions kept open for the next message end when unused.
            ctx.pool.reap();
            for ev in first
                .into_iter()
                .chain(std::iter::from_fn(|| ev_rx.try_recv().ok()))
            {
                match ev {
                    Event::Wake => must_scan = true,
                    Event::Flush => {
                        info!("flush requested: retrying deferred mail now");
                        flush = true;
                        must_scan = true;
                    }
                    Event::Finished(id, pass) => {
                        inflight.remove(&id);
                        match pass {
                            Pass::Done | Pass::Gone => {
                                due.remove(&id);
                            }
                            Pass::Deferred(t) => {
                                due.insert(id, t);
                            }
                            Pass::Busy => {
                                due.insert(id, posthorn_mail::date::unix_now() + 5);
                            }
                            Pass::Throttled(key) => {
                                due.remove(&id);
                                parked.0.push((id, key));
                            }
                        }
                        // A finished message may have queued a bounce.
                        must_scan = true;
                    }
                }
            }
            // Messages whose recipient has a free slot again.
            for id in parked.ready(ctx) {
                inflight.insert(id.clone());
                if job_tx.send(id).is_err() {
                    return Err(Exit::new(exit::SOFTWARE, "worker threads are gone"));
                }
            }
        }
    })
}
