//! As root (CI): the peers `make bench` measures Posthorn against run as
//! instances of their own and leave the machine's own Postfix and Dovecot
//! as they found them (issue 22). Skipped, with a note, when not root.
//!
//! The test brings up a system Postfix and Dovecot if none runs (with a
//! configuration of its own that listens on no TCP port, as other tests
//! use the ports), notes their configuration files, queue, processes and
//! listeners, runs the setup and the teardown of each bench peer, checks
//! that all of it is the same afterwards, and puts the system back. A
//! system Postfix already running is used as it is: on a host where it
//! is busy, its queue may change by itself during the test.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The machine's mail configuration, as the bench must leave it.
const CONFIG: &[&str] = &[
    "/etc/postfix",
    "/etc/dovecot",
    "/etc/aliases",
    "/etc/aliases.db",
    "/etc/mailname",
];
/// Where the system instances keep their state: what the test adds by
/// starting them, it removes after stopping them.
const RUNTIME: &[&str] = &[
    "/var/spool/postfix",
    "/var/lib/postfix",
    "/run/dovecot",
    "/var/lib/dovecot",
];
/// The users the bench's peers create (README, make bench).
const BENCH_USERS: &[&str] = &["phbench-pf", "phbench-dc"];
const QUEUES: &[&str] = &[
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt", "saved",
];

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("scripts")
}

/// cmd - run a program to its end, stdin closed.
fn cmd(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

/// daemon - start a program that leaves a daemon behind; the daemon gets
/// no pipe of ours (it would hold it open), so only the exit status.
fn daemon(prog: &str, args: &[&str]) -> std::process::ExitStatus {
    Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

/// script - one of scripts/bench-*.sh, as make bench runs it.
fn script(name: &str, args: &[&str]) -> Output {
    let out = Command::new("sh")
        .arg(scripts().join(name))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprintln!("{name} {}: {}", args.join(" "), text(&out.stderr));
    out
}

/// fnv - a 64-bit FNV-1a hash, to tell file contents apart.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

/// describe - what changes to `p` would show: type, mode, owner, and the
/// contents of a file or the target of a link.
fn describe(p: &Path, m: &std::fs::Metadata) -> String {
    let ft = m.file_type();
    let what = if ft.is_symlink() {
        format!("-> {}", std::fs::read_link(p).unwrap_or_default().display())
    } else if ft.is_file() {
        let data = std::fs::read(p).unwrap_or_default();
        format!("file {} bytes {:016x}", data.len(), fnv(&data))
    } else if ft.is_dir() {
        "dir".into()
    } else if ft.is_socket() {
        "socket".into()
    } else if ft.is_fifo() {
        "fifo".into()
    } else {
        "other".into()
    };
    format!("{:o} {}:{} {what}", m.mode() & 0o7777, m.uid(), m.gid())
}

/// files - every path under `roots` (those that exist), described.
fn files(roots: &[&str]) -> BTreeMap<PathBuf, String> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        out.insert(p.to_path_buf(), describe(p, &m));
        if m.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in roots {
        walk(Path::new(r), &mut out);
    }
    out
}

/// changes - the paths added, removed or changed from `a` to `b`.
fn changes(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, d) in a {
        match b.get(p) {
            None => out.push(format!("removed {} ({d})", p.display())),
            Some(e) if e != d => out.push(format!("changed {}: {d} -> {e}", p.display())),
            _ => {}
        }
    }
    for (p, d) in b {
        if !a.contains_key(p) {
            out.push(format!("added {} ({d})", p.display()));
        }
    }
    out
}

/// stat - a process's (state, start time), or None when it is gone.
fn stat(pid: u32) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.first()?.to_string(), f.get(19)?.parse().ok()?))
}

/// Proc - one process, told from a later one with the same pid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    start: u64,
    comm: String,
}

impl Proc {
    fn get(pid: u32) -> Option<Proc> {
        let (state, start) = stat(pid)?;
        if state == "Z" {
            return None; // exited; nobody reaped it yet
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        Some(Proc {
            pid,
            start,
            comm: comm.trim().to_string(),
        })
    }
    fn alive(&self) -> bool {
        Proc::get(self.pid).is_some_and(|p| p.start == self.start)
    }
}

/// all_pids - the pids in /proc.
fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// tree - `root` and its living descendants.
fn tree(root: u32) -> Vec<Proc> {
    let mut kids: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in all_pids() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let ppid = s[s.rfind(')').unwrap_or(0) + 2..]
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok());
            if let Some(pp) = ppid {
                kids.entry(pp).or_default().push(p);
            }
        }
    }
    let (mut out, mut todo) = (Vec::new(), vec![root]);
    while let Some(p) = todo.pop() {
        if let Some(pr) = Proc::get(p) {
            out.push(pr);
        }
        todo.extend(kids.get(&p).into_iter().flatten());
    }
    out.sort();
    out
}

/// with_env - living processes whose environment holds `var`
/// (Postfix's master passes MAIL_CONFIG=DIR to everything it runs).
fn with_env(var: &str) -> Vec<Proc> {
    all_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == var.as_bytes()))
        })
        .filter_map(Proc::get)
        .collect()
}

/// with_arg - living processes with `s` in their command line.
fn with_arg(s: &str) -> Vec<Proc> {
    all_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(s))
        })
        .filter_map(Proc::get)
        .collect()
}

/// pid_file - the living process a pid file names.
fn pid_file(path: &str) -> Option<Proc> {
    let t = std::fs::read_to_string(path).ok()?;
    Proc::get(t.trim().parse().ok()?)
}

fn postfix_queue_dir() -> String {
    text(&cmd("postconf", &["-h", "queue_directory"]).stdout)
        .trim()
        .to_string()
}

/// postfix_master - the system Postfix's master, if it runs.
fn postfix_master() -> Option<Proc> {
    pid_file(&format!("{}/pid/master.pid", postfix_queue_dir())).filter(|p| p.comm == "master")
}

/// dovecot_master - the system Dovecot's master (base_dir /run/dovecot).
fn dovecot_master() -> Option<Proc> {
    pid_file("/run/dovecot/master.pid").filter(|p| p.comm == "dovecot")
}

/// listeners - the TCP ports a process listens on.
fn listeners(pid: u32) -> BTreeSet<String> {
    let out = cmd("ss", &["-Hltnp"]);
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// listening - whether anything listens on 127.0.0.1:port.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// passwd - the passwd line of `user`, if any.
fn passwd(user: &str) -> Option<String> {
    let out = cmd("getent", &["passwd", user]);
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

/// Snapshot - what a bench must not change on the machine.
#[derive(Debug, PartialEq)]
struct Snapshot {
    config: BTreeMap<PathBuf, String>,
    queue: BTreeMap<PathBuf, String>,
    /// The masters, and the children a reload or restart would replace.
    procs: Vec<Proc>,
    ports: BTreeSet<String>,
}

impl Snapshot {
    fn take() -> Snapshot {
        let q = postfix_queue_dir();
        let queues: Vec<String> = QUEUES.iter().map(|d| format!("{q}/{d}")).collect();
        let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
        let mut procs = Vec::new();
        let mut ports = BTreeSet::new();
        if let Some(m) = postfix_master() {
            ports.extend(listeners(m.pid).into_iter().map(|l| format!("postfix {l}")));
            // qmgr lives as long as the master; a reload replaces it.
            procs.extend(
                tree(m.pid)
                    .into_iter()
                    .filter(|p| p.pid == m.pid || p.comm == "qmgr"),
            );
        }
        if let Some(m) = dovecot_master() {
            ports.extend(listeners(m.pid).into_iter().map(|l| format!("dovecot {l}")));
            // Its config and anvil processes are replaced by a reload.
            procs.extend(
                tree(m.pid)
                    .into_iter()
                    .filter(|p| p.pid == m.pid || p.comm == "config" || p.comm == "anvil"),
            );
        }
        Snapshot {
            config: files(CONFIG),
            queue: files(&queues),
            procs,
            ports,
        }
    }

    /// differences - what changed from `self` to `after`, in words.
    fn differences(&self, after: &Snapshot) -> Vec<String> {
        let mut out = changes(&self.config, &after.config);
        out.extend(changes(&self.queue, &after.queue));
        if self.procs != after.procs {
            out.push(format!("processes: {:?} -> {:?}", self.procs, after.procs));
        }
        if self.ports != after.ports {
            out.push(format!("listeners: {:?} -> {:?}", self.ports, after.ports));
        }
        out
    }
}

/// SystemMail - the system Postfix and Dovecot running, started by the
/// test if they were not, and put back as they were by `restore` (or, if
/// the test fails first, on drop).
struct SystemMail {
    config: BTreeMap<PathBuf, String>,
    runtime: BTreeSet<PathBuf>,
    users: Vec<(&'static str, Option<String>)>,
    wrote_main_cf: bool,
    postfix: Option<Proc>,
    held: Option<String>,
    wrote_local_conf: bool,
    dovecot: Option<Proc>,
    restored: bool,
}

const MAIN_CF: &str = "/etc/postfix/main.cf";
const LOCAL_CONF: &str = "/etc/dovecot/local.conf";

impl SystemMail {
    /// up - the system instances running, each with something to keep.
    fn up() -> SystemMail {
        let mut s = SystemMail {
            config: files(CONFIG),
            runtime: files(RUNTIME).into_keys().collect(),
            users: BENCH_USERS.iter().map(|u| (*u, passwd(u))).collect(),
            wrote_main_cf: false,
            postfix: None,
            held: None,
            wrote_local_conf: false,
            dovecot: None,
            restored: false,
        };
        if postfix_master().is_none() {
            // Debian's "No configuration" leaves no main.cf: a minimal one,
            // with no TCP listener (other tests use 127.0.0.1:25) and
            // remote mail kept in the queue.
            if !Path::new(MAIN_CF).exists() {
                std::fs::write(
                    MAIN_CF,
                    "# Written by posthorn's tests/e2e/bench.rs for one test; removed after it.\n\
                     compatibility_level = 3.6\n\
                     myhostname = localhost.localdomain\n\
                     mydestination = localhost.localdomain, localhost\n\
                     inet_interfaces = loopback-only\n\
                     inet_protocols = ipv4\n\
                     master_service_disable = inet\n\
                     alias_maps =\n\
                     alias_database =\n\
                     defer_transports = smtp\n",
                )
                .unwrap();
                s.wrote_main_cf = true;
            }
            assert!(
                daemon("postfix", &["start"]).success(),
                "postfix start failed (its messages go to syslog)"
            );
            assert!(
                wait_for(Duration::from_secs(10), || postfix_master().is_some()),
                "the system Postfix did not start"
            );
            s.postfix = postfix_master();
            // A message of its own in its queue, held, for the bench to
            // leave alone.
            let out = run_with_stdin(
                {
                    let mut c = Command::new("/usr/sbin/sendmail");
                    c.args(["-i", "phbench-held@example.invalid"]);
                    c
                },
                b"Subject: held by tests/e2e/bench.rs\n\nx\n",
            );
            assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
            let mut id = None;
            assert!(
                wait_for(Duration::from_secs(20), || {
                    // Deferred (defer_transports): qmgr is done with it.
                    id = text(&cmd("postqueue", &["-j"]).stdout)
                        .lines()
                        .find(|l| {
                            l.contains("phbench-held@example.invalid")
                                && l.contains("\"queue_name\": \"deferred\"")
                        })
                        .and_then(|l| l.split("\"queue_id\": \"").nth(1))
                        .and_then(|r| r.split('"').next())
                        .map(str::to_string);
                    id.is_some()
                }),
                "the message did not reach the system Postfix's queue"
            );
            let id = id.unwrap();
            s.held = Some(id.clone());
            let out = cmd("postsuper", &["-h", &id]);
            assert!(out.status.success(), "postsuper -h: {}", text(&out.stderr));
            assert!(
                wait_for(Duration::from_secs(10), || text(
                    &cmd("postqueue", &["-j"]).stdout
                )
                .lines()
                .any(|l| l.contains(&id) && l.contains("\"queue_name\": \"hold\""))),
                "the message is not on hold"
            );
        }
        if dovecot_master().is_none() {
            // Debian's configuration, with no protocol (no TCP listener):
            // a Dovecot master with its sockets in /run/dovecot.
            if !Path::new(LOCAL_CONF).exists() {
                std::fs::write(
                    LOCAL_CONF,
                    "# Written by posthorn's tests/e2e/bench.rs for one test; removed after it.\n\
                     protocols = none\n",
                )
                .unwrap();
                s.wrote_local_conf = true;
            }
            assert!(
                daemon("dovecot", &[]).success(),
                "dovecot failed to start: doveconf -n says what"
            );
            assert!(
                wait_for(Duration::from_secs(10), || dovecot_master().is_some()),
                "the system Dovecot did not start"
            );
            s.dovecot = dovecot_master();
        }
        s
    }

    /// restore - stop what `up` started, remove what it and they wrote,
    /// and the bench users if there were none; the problems, in words.
    fn restore(&mut self) -> Vec<String> {
        self.restored = true;
        let mut problems = Vec::new();
        if let Some(id) = self.held.take() {
            let out = cmd("postsuper", &["-d", &id, "hold"]);
            if !out.status.success() {
                problems.push(format!("postsuper -d {id}: {}", text(&out.stderr)));
            }
        }
        if let Some(m) = self.postfix.take() {
            let procs = tree(m.pid);
            let _ = daemon("postfix", &["stop"]);
            if !wait_for(Duration::from_secs(20), || procs.iter().all(|p| !p.alive())) {
                problems.push(format!("the system Postfix did not stop: {procs:?}"));
            }
        }
        if let Some(m) = self.dovecot.take() {
            let procs = tree(m.pid);
            // SAFETY: a signal to the master this test started.
            unsafe { libc::kill(m.pid as i32, libc::SIGTERM) };
            if !wait_for(Duration::from_secs(20), || procs.iter().all(|p| !p.alive())) {
                problems.push(format!("the system Dovecot did not stop: {procs:?}"));
            }
        }
        if self.wrote_main_cf {
            let _ = std::fs::remove_file(MAIN_CF);
        }
        if self.wrote_local_conf {
            let _ = std::fs::remove_file(LOCAL_CONF);
        }
        // What the started instances left (sockets, pid and lock files,
        // queue directories they made), newest first.
        let now: Vec<PathBuf> = files(RUNTIME).into_keys().collect();
        for p in now.iter().rev() {
            if !self.runtime.contains(p) {
                let r = if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                    std::fs::remove_dir(p)
                } else {
                    std::fs::remove_file(p)
                };
                if let Err(e) = r {
                    problems.push(format!("remove {}: {e}", p.display()));
                }
            }
        }
        for (user, before) in &self.users {
            match (before, passwd(user)) {
                (None, Some(_)) => {
                    let _ = cmd("userdel", &[user]);
                }
                (Some(b), Some(now)) if *b != now => {
                    let home = b.split(':').nth(5).unwrap_or("/nonexistent");
                    let _ = cmd("usermod", &["--home", home, user]);
                }
                _ => {}
            }
            if passwd(user) != *before {
                problems.push(format!("user {user}: {before:?} -> {:?}", passwd(user)));
            }
        }
        problems.extend(changes(&self.config, &files(CONFIG)));
        problems
    }
}

impl Drop for SystemMail {
    fn drop(&mut self) {
        if !self.restored {
            for p in self.restore() {
                eprintln!("bench test cleanup: {p}");
            }
        }
    }
}

/// pop3_login - USER bench / PASS pw on 127.0.0.1:port; the last reply.
fn pop3_login(port: u16) -> String {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    for c in ["USER bench", "PASS pw"] {
        w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    let _ = w.write_all(b"QUIT\r\n");
    line
}

/// banner - the first line a server on 127.0.0.1:port sends.
fn banner(port: u16) -> String {
    use std::io::{BufRead, BufReader};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// Down - a peer's teardown, run again if the test fails before its own.
struct Down(&'static str, PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = script(self.0, &["down", self.1.to_str().unwrap()]);
        }
    }
}

/// postfix_peer - scripts/bench-postfix-setup.sh up and down: a Postfix
/// of its own that delivers, and nothing of it left after.
fn postfix_peer(dir: &Path) {
    let d = dir.to_str().unwrap();
    let conf = format!("MAIL_CONFIG={d}/conf");
    let port = free_port();
    let _down = Down("bench-postfix-setup.sh", dir.to_path_buf());
    for round in 0..2 {
        // The second "up" finds the first instance running.
        let out = script("bench-postfix-setup.sh", &["up", d, &port.to_string()]);
        assert!(out.status.success(), "up (round {round}) failed");
    }
    let master = pid_file(&format!("{d}/queue/pid/master.pid")).expect("the instance's master");
    assert!(!with_env(&conf).is_empty(), "the instance's processes");
    assert!(
        banner(port).starts_with("220 bench.test ESMTP"),
        "its smtpd on its own port"
    );
    let mut c = Command::new("/usr/sbin/sendmail");
    c.args(["-C", &format!("{d}/conf"), "-i", "phbench-pf@bench.test"]);
    let out = run_with_stdin(c, b"Subject: through the bench's Postfix\n\nx\n");
    assert!(out.status.success(), "sendmail -C: {}", text(&out.stderr));
    let new = dir.join("home/Maildir/new");
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_dir(&new)
            .is_ok_and(|d| d.count() == 1)),
        "no delivery to {}: {}",
        new.display(),
        std::fs::read_to_string(dir.join("postfix.log")).unwrap_or_default()
    );
    let procs = tree(master.pid);
    let out = script("bench-postfix-setup.sh", &["down", d]);
    assert!(out.status.success(), "down failed");
    let left: Vec<_> = procs.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(with_env(&conf), vec![], "left running with {conf}");
    assert!(!listening(port), "port {port} still open");
    // down when nothing runs is fine too.
    assert!(
        script("bench-postfix-setup.sh", &["down", d])
            .status
            .success()
    );
}

/// dovecot_peer - scripts/bench-dovecot-setup.sh up and down: a Dovecot
/// of its own that logs in, and nothing of it left after.
fn dovecot_peer(dir: &Path) {
    let d = dir.to_str().unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("Maildir/new")).unwrap();
    let port = free_port();
    let _down = Down("bench-dovecot-setup.sh", dir.to_path_buf());
    let out = script(
        "bench-dovecot-setup.sh",
        &["up", d, &port.to_string(), home.to_str().unwrap()],
    );
    assert!(out.status.success(), "up failed");
    let master = pid_file(&format!("{d}/run/master.pid")).expect("the instance's master");
    let reply = pop3_login(port);
    assert!(reply.starts_with("+OK"), "POP3 login: {reply}");
    let procs = tree(master.pid);
    let out = script("bench-dovecot-setup.sh", &["down", d]);
    assert!(out.status.success(), "down failed");
    let left: Vec<_> = procs.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(with_arg(d), vec![], "left running from {d}");
    assert!(!listening(port), "port {port} still open");
}

/// imap_peer - scripts/bench-imap.sh on a small folder: Dovecot's imap
/// run alone from a configuration of its own, no session left after.
fn imap_peer(dir: &Path) {
    let d = dir.to_str().unwrap();
    let out = Command::new("bash")
        .arg(scripts().join("bench-imap.sh"))
        .env("BENCH_BIN", bin_dir())
        .env("BENCH_IMAP_DIR", d)
        .env("BENCH_IMAP_MESSAGES", "40")
        .env("BENCH_ROUNDS", "1")
        .env("BENCH_IMAP_SESSIONS", "2")
        .env("BENCH_IMAP_DELIVERIES", "2")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench-imap.sh: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("wake median"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(with_arg(d), vec![], "left running from {d}");
}

#[test]
fn bench_peers_leave_the_system_postfix_and_dovecot_as_they_were() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    for p in [
        "/usr/sbin/postfix",
        "/usr/sbin/sendmail",
        "/usr/sbin/dovecot",
        "/usr/lib/dovecot/pop3",
        "/usr/lib/dovecot/imap",
    ] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: apt-get install postfix dovecot-pop3d dovecot-imapd (.ci/run does)"
        );
    }
    let mut system = SystemMail::up();
    let before = Snapshot::take();
    assert!(!before.procs.is_empty());
    let work = tempfile::Builder::new()
        .prefix("posthorn-bench-peers")
        .tempdir()
        .unwrap();
    chmod(work.path(), 0o755);

    postfix_peer(&work.path().join("postfix"));
    dovecot_peer(&work.path().join("dovecot"));
    imap_peer(&work.path().join("imap"));

    let after = Snapshot::take();
    let diff = before.differences(&after);
    assert!(
        diff.is_empty(),
        "the bench changed the system:\n{}",
        diff.join("\n")
    );
    let problems = system.restore();
    assert!(
        problems.is_empty(),
        "the system is not as the test found it:\n{}",
        problems.join("\n")
    );
}
