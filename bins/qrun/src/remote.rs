//! remote - run the `remote` helper for one message's recipients at one
//! domain, and hand back each recipient's outcome the moment its line
//! arrives, so the caller can make it durable before the next.
//!
//! The helper runs as `nobody` (root gone for good, saved uid included),
//! not as the account that owns the spool: a process that parses what
//! strangers send must not be able to read or change queued mail. It gets
//! the relay password from qrun on its input, so it needs no file of
//! ours. It is not trusted either: its lines are parsed strictly,
//! an index it was not given is ignored, and a recipient it says nothing
//! about (crash, kill, garbage) is deferred, never bounced.

use crate::agent::Agent;
use posthorn_spool::envelope::{ChunkWriter, Envelope, Recipient};
use posthorn_sys::privs;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// DestLimit - how many remote deliveries may run at once to one
/// destination (`[smtp] destination_concurrency`, Postfix's
/// default_destination_concurrency_limit); `queue.parallel` is the global cap.
#[derive(Debug)]
pub struct DestLimit {
    busy: Mutex<HashMap<String, usize>>,
    freed: Condvar,
    limit: usize,
}

/// A slot held for one delivery; given back on drop.
#[derive(Debug)]
pub struct DestSlot<'a> {
    owner: &'a DestLimit,
    dest: String,
}

impl DestLimit {
    /// new - a limit of `limit` at once per destination.
    pub fn new(limit: usize) -> DestLimit {
        DestLimit {
            busy: Mutex::new(HashMap::new()),
            freed: Condvar::new(),
            limit: limit.max(1),
        }
    }

    /// acquire - wait for a free slot at `dest`.
    pub fn acquire(&self, dest: &str) -> DestSlot<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while busy.get(dest).copied().unwrap_or(0) >= self.limit {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy.entry(dest.to_string()).or_insert(0) += 1;
        DestSlot {
            owner: self,
            dest: dest.to_string(),
        }
    }
}

impl Drop for DestSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.owner.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = busy.get_mut(&self.dest) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.dest);
            }
        }
        self.owner.freed.notify_all();
    }
}

/// What the helper said about one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Index into the recipients given to `send`.
    pub index: usize,
    /// 'S' sent, 'R' sent to a server without DSN, 'W' deferred, 'X' bounced.
    pub status: char,
    pub dsn: String,
    pub relay: String,
    pub conn_secs: f64,
    pub xfer_secs: f64,
    /// Transactions on the connection so far, this one included.
    pub conn_use: u32,
    pub mta: String,
    pub diag: String,
    pub text: String,
}

/// parse_line - one result line of remote(8); None for anything malformed.
pub fn parse_line(line: &str, n: usize) -> Option<Report> {
    let f: Vec<&str> = line.trim_end_matches('\n').splitn(10, '\t').collect();
    if f.len() != 10 {
        return None;
    }
    let index: usize = f[0].parse().ok().filter(|i| *i < n)?;
    let status = match f[1] {
        "S" => 'S',
        "R" => 'R',
        "W" => 'W',
        "X" => 'X',
        _ => return None,
    };
    let dsn = f[2];
    let class_ok = match status {
        'S' | 'R' => dsn.starts_with("2."),
        'W' => dsn.starts_with("4."),
        _ => dsn.starts_with("5."),
    };
    if !class_ok || dsn.len() > 12 || !dsn.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some(Report {
        index,
        status,
        dsn: dsn.to_string(),
        relay: f[3].to_string(),
        conn_secs: f[4].parse().unwrap_or(0.0),
        xfer_secs: f[5].parse().unwrap_or(0.0),
        conn_use: f[6].parse().unwrap_or(0),
        mta: f[7].to_string(),
        diag: f[8].to_string(),
        text: f[9].to_string(),
    })
}

/// A remote(8) session kept between messages, with its connection open.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    /// The last "remote: ..." line on its standard error.
    why: Arc<Mutex<String>>,
    idle_since: Instant,
    /// Whose rights a kill needs (nobody's, when qrun runs as root).
    kill_as: Option<privs::Ids>,
}

/// How long a helper told to stop (its input closed) may take to QUIT and exit.
const STOP_LIMIT: Duration = Duration::from_secs(60);

impl Helper {
    /// spawn - a new session as nobody (or as qrun without root).
    fn spawn(agent: &Agent, helper: &std::path::Path) -> Result<Helper, String> {
        let mut cmd = Command::new(helper);
        cmd.args(&agent.config_args).arg("--session");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(root) = &agent.root {
            privs::command_as(&mut cmd, &root.nobody);
        }
        // A group of its own: a watchdog kills it whole if a job hangs.
        let mut child = posthorn_sys::child::spawn_grouped(&mut cmd)
            .map_err(|e| format!("cannot run {}: {e}", helper.display()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("remote: no pipes".into());
        };
        let why = Arc::new(Mutex::new(String::new()));
        let w = why.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                // Lines are capped: the helper is not trusted with our memory.
                buf.clear();
                match (&mut r).take(4096).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if buf.last() != Some(&b'\n') {
                    // The rest of an overlong line is skipped.
                    let mut skip = Vec::new();
                    while (&mut r)
                        .take(4096)
                        .read_until(b'\n', &mut skip)
                        .is_ok_and(|n| n > 0)
                        && skip.last() != Some(&b'\n')
                    {
                        skip.clear();
                    }
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end();
                if line.starts_with("posthorn/") {
                    eprintln!("{line}");
                } else if let Some(r) = line.strip_prefix("remote: ")
                    && let Ok(mut g) = w.lock()
                {
                    *g = r.trim().to_string();
                }
            }
        });
        Ok(Helper {
            child,
            stdin,
            out: BufReader::new(stdout),
            why,
            idle_since: Instant::now(),
            kill_as: agent.root.as_ref().map(|r| r.nobody.clone()),
        })
    }

    /// reap - wait for a helper whose input is closed, for STOP_LIMIT at
    /// most; then it is killed, and reaped all the same.
    fn reap(
        child: &mut Child,
        kill_as: Option<privs::Ids>,
    ) -> std::io::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + STOP_LIMIT;
        match posthorn_sys::child::wait_until(child, deadline, kill_as.as_ref())? {
            Some(st) => Ok(st),
            // Killed (and reaped): reported as the signal death it was.
            None => {
                use std::os::unix::process::ExitStatusExt;
                Ok(std::process::ExitStatus::from_raw(libc::SIGKILL))
            }
        }
    }

    /// finish - close its input (it QUITs and exits) and reap it.
    fn finish(self) {
        let Helper {
            mut child,
            stdin,
            kill_as,
            ..
        } = self;
        drop(stdin);
        let _ = Helper::reap(&mut child, kill_as);
    }

    /// fail - reap a helper that broke: why, and whether it exited 0.
    fn fail(self) -> (String, bool) {
        let Helper {
            mut child,
            stdin,
            why,
            kill_as,
            ..
        } = self;
        drop(stdin);
        let status = Helper::reap(&mut child, kill_as);
        let why = why.lock().map(|g| g.clone()).unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let clean = status.as_ref().is_ok_and(|s| s.success());
        let why = match status {
            Ok(st) => match (st.code(), st.signal()) {
                (_, Some(sig)) => format!("remote delivery agent was killed by signal {sig}"),
                (Some(c), _) if !why.is_empty() => {
                    format!("remote delivery agent failed ({c}): {why}")
                }
                (Some(c), _) => format!("remote delivery agent exited with status {c}"),
                _ => "remote delivery agent failed".to_string(),
            },
            Err(e) => format!("waiting for remote: {e}"),
        };
        (why, clean)
    }
}

/// How long an idle session is worth keeping: less than remote's own
/// SESSION_IDLE, so a helper is never handed a job as it gives up.
const KEEP_IDLE: Duration = Duration::from_secs(2);

/// Pool - idle remote(8) sessions by destination, so that the next
/// message to a destination reuses the open connection.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Helper>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// reap - close the sessions idle too long.
    pub fn reap(&self) {
        let _ = self.take("");
    }

    /// take - a live idle session for `dest`; stale ones are closed.
    fn take(&self, dest: &str) -> Option<Helper> {
        let mut stale = Vec::new();
        let got = {
            let mut idle = self.idle.lock().ok()?;
            for v in idle.values_mut() {
                let (old, fresh): (Vec<Helper>, Vec<Helper>) = v
                    .drain(..)
                    .partition(|h| h.idle_since.elapsed() >= KEEP_IDLE);
                stale.extend(old);
                *v = fresh;
            }
            idle.retain(|_, v| !v.is_empty());
            idle.get_mut(dest).and_then(Vec::pop)
        };
        // Each says QUIT and waits for the answer: not on the caller's time
        // (the daemon's event loop reaps).
        if !stale.is_empty() {
            std::thread::spawn(move || {
                for h in stale {
                    h.finish();
                }
            });
        }
        got
    }

    /// put - keep a session that finished its job cleanly.
    fn put(&self, dest: &str, mut h: Helper) {
        h.idle_since = Instant::now();
        match self.idle.lock() {
            Ok(mut idle) => idle.entry(dest.to_string()).or_default().push(h),
            Err(_) => h.finish(),
        }
    }

    /// close - end every idle session (end of a queue run).
    pub fn close(&self) {
        let all: Vec<Helper> = match self.idle.lock() {
            Ok(mut idle) => idle.drain().flat_map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for h in all {
            h.finish();
        }
    }
}

/// send - hand one message for `rcpts` at `domain` to a remote(8) session
/// for `dest` (an idle one with its connection open, else a new one);
/// `each` gets every report as it comes.
#[allow(clippy::too_many_arguments)]
pub fn send(
    agent: &Agent,
    pool: &Pool,
    helper: &std::path::Path,
    dest: &str,
    qid: &str,
    domain: &str,
    env: &Envelope,
    rcpts: &[Recipient],
    top: &[u8],
    msg: &mut File,
    offset: u64,
    size: u64,
    login: Option<&(String, String)>,
    mut each: impl FnMut(Report),
) -> Result<(), String> {
    let sub = Envelope {
        recipients: rcpts.to_vec(),
        ..env.clone()
    };
    let mut write_job = |h: &mut Helper| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(&mut h.stdin);
        writeln!(w, "J{qid}\t{domain}")?;
        // remote(8): an optional login line ahead of the records.
        if let Some((user, pass)) = login {
            writeln!(w, "A{user}\t{pass}")?;
        }
        sub.write_records(&mut w)?;
        msg.seek(SeekFrom::Start(offset))?;
        let mut cw = ChunkWriter::new(&mut w);
        // Fields that go on top of the message (DKIM-Signature).
        cw.write_all(top)?;
        std::io::copy(&mut (&mut *msg).take(size), &mut cw)?;
        cw.finish()?;
        w.flush()
    };
    // A kept session may have just ended: then nothing was sent, and a
    // new one takes the job. The helper reads the whole job before it
    // connects, so writing it all before reading cannot deadlock.
    let mut kept = pool.take(dest);
    loop {
        let from_pool = kept.is_some();
        let mut h = match kept.take() {
            Some(h) => h,
            None => Helper::spawn(agent, helper)?,
        };
        // The helper keeps its own time (smtp.message_timeout); one that
        // does not is killed, and what it did not report is deferred.
        let watchdog = posthorn_sys::child::Watchdog::arm(
            h.child.id(),
            Instant::now() + agent.remote_limit,
            agent.root.as_ref().map(|r| r.nobody.clone()),
        );
        // EPIPE means the helper stopped early: its status tells why.
        let _ = write_job(&mut h);
        let mut line = String::new();
        let mut reported = false;
        let broke = loop {
            line.clear();
            match (&mut h.out).take(64 << 10).read_line(&mut line) {
                Ok(0) | Err(_) => break true,
                Ok(_) => {}
            }
            // A line cut short by a crash is no report.
            if !line.ends_with('\n') {
                break true;
            }
            if line == ".\n" {
                break false;
            }
            if let Some(rep) = parse_line(&line, rcpts.len()) {
                reported = true;
                each(rep);
            }
        };
        // Disarmed before the helper is kept or reaped.
        drop(watchdog);
        if !broke {
            pool.put(dest, h);
            return Ok(());
        }
        let (why, clean) = h.fail();
        // A kept session that ended by itself (idle, status 0) before it
        // said anything never saw the job: a new one takes it.
        if from_pool && clean && !reported {
            continue;
        }
        return Err(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_per_destination() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = DestLimit::new(2);
        let (now, max, other) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        std::thread::scope(|s| {
            for i in 0..8 {
                let (l, now, max, other) = (&l, &now, &max, &other);
                s.spawn(move || {
                    if i == 7 {
                        // Another destination is not held up by a full one.
                        let _g = l.acquire("b.example");
                        other.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let _g = l.acquire("a.example");
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(max.load(Ordering::SeqCst), 2);
        assert_eq!(other.load(Ordering::SeqCst), 1);
        assert!(l.busy.lock().unwrap().is_empty());
    }

    #[test]
    fn result_lines_are_checked() {
        let r = parse_line(
            "1\tX\t5.1.1\tmx[127.0.0.1]:25\t0.01\t0.20\t2\tmx\t550 5.1.1 no\thost mx said: 550 5.1.1 no\tstill text\n",
            2,
        )
        .unwrap();
        assert_eq!(
            (r.index, r.status, r.dsn.as_str(), r.conn_use),
            (1, 'X', "5.1.1", 2)
        );
        assert_eq!(r.text, "host mx said: 550 5.1.1 no\tstill text");
        // Out of range, a status that disagrees with its code, too few fields.
        assert!(parse_line("2\tS\t2.0.0\tr\t0\t0\t1\tm\td\tt", 2).is_none());
        assert!(parse_line("0\tS\t5.0.0\tr\t0\t0\t1\tm\td\tt", 2).is_none());
        assert!(parse_line("0\tW\t4.4.1\tr", 2).is_none());
        assert!(parse_line("0\tW\t4.4.1\tr\t0\t0\t0\t\t\tconnect failed", 1).is_some());
    }
}
