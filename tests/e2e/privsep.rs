//! privsep - issue 14: for each server and launch mode (inetd-style
//! through systemd-socket-activate, started as root and not), what the
//! kernel says about each process of a session, from /proc: the process
//! that reads the network before login holds no privilege (every uid and
//! gid unprivileged, no supplementary groups, no capabilities; chrooted
//! when started as root), the session after login is the mailbox owner,
//! the password check holds no connection to the client, and mail still
//! flows over STARTTLS, implicit TLS and COMPRESS through real clients
//! (imaplib, poplib, smtplib). And hole 4: root and accounts below
//! `[auth] first_valid_uid` get exactly a wrong password's answer and
//! delay, and smtpd relays nothing for them.

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A system account for the test, removed afterwards.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    /// add - useradd (a system account with `system`: uid below 1000),
    /// with `password` set by chpasswd when given.
    fn add(
        tag: &str,
        system: bool,
        home: Option<&std::path::Path>,
        password: Option<&str>,
    ) -> Account {
        let name = format!("ph{tag}{}", std::process::id() % 100000);
        let mut c = Command::new("useradd");
        if system {
            c.arg("--system");
        }
        match home {
            Some(h) => c.arg("-m").arg("-d").arg(h),
            None => c.arg("-M"),
        };
        let st = c.args(["-s", "/usr/sbin/nologin", &name]).status().unwrap();
        assert!(st.success(), "useradd {name}");
        if let Some(pw) = password {
            let mut ch = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            ch.stdin
                .take()
                .unwrap()
                .write_all(format!("{name}:{pw}\n").as_bytes())
                .unwrap();
            assert!(ch.wait().unwrap().success());
        }
        let id = |f: &str| -> u32 {
            text(&Command::new("id").args([f, &name]).output().unwrap().stdout)
                .trim()
                .parse()
                .unwrap()
        };
        Account {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// What /proc/PID/status says about a process's privileges.
#[derive(Debug)]
struct Privs {
    uids: Vec<u32>,
    gids: Vec<u32>,
    groups: Vec<u32>,
    cap_eff: u64,
    cap_prm: u64,
    ppid: u32,
}

fn privs(pid: u32) -> Privs {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |k: &str| -> String {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/status"))
            .trim()
            .to_string()
    };
    let nums = |k: &str| -> Vec<u32> {
        field(k)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let hex = |k: &str| u64::from_str_radix(&field(k), 16).unwrap();
    Privs {
        uids: nums("Uid:"),
        gids: nums("Gid:"),
        groups: nums("Groups:"),
        cap_eff: hex("CapEff:"),
        cap_prm: hex("CapPrm:"),
        ppid: field("PPid:").parse().unwrap(),
    }
}

/// root_of - where /proc/PID/root points.
fn root_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/root"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// tcp_fds - how many of a process's descriptors are TCP sockets (their
/// inodes listed in /proc/net/tcp or tcp6).
fn tcp_fds(pid: u32) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for t in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for l in std::fs::read_to_string(t)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            if let Some(ino) = l.split_whitespace().nth(9) {
                inodes.insert(format!("socket:[{ino}]"));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| inodes.contains(&*l.to_string_lossy()))
        })
        .count()
}

/// fd_target - where descriptor `n` of a process points.
fn fd_target(pid: u32, n: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// children - the processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .is_some_and(|pp| pp == pid.to_string())
            })
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
}

/// log_pid - the pid on the last line of the launcher's log that
/// contains `needle` (the servers log `posthorn/NAME[PID]: ...`).
fn log_pid(i: &Instance, needle: &str) -> u32 {
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            let log = std::fs::read_to_string(i.path("launcher.log")).unwrap_or_default();
            found = log.lines().rev().find(|l| l.contains(needle)).map(|l| {
                let a = l.find('[').unwrap() + 1;
                let b = l[a..].find(']').unwrap() + a;
                l[a..b].parse().unwrap()
            });
            found.is_some()
        }),
        "no log line with {needle:?}:\n{}",
        std::fs::read_to_string(i.path("launcher.log")).unwrap_or_default()
    );
    found.unwrap()
}

/// session_start - wait until the launcher's probe connection (made
/// when it started) is over, so that its next child is our client's
/// server; then a way to find that child.
fn session_start<'a>(l: &'a Launcher, what: &str) -> impl Fn() -> u32 + 'a {
    assert!(
        wait_for(Duration::from_secs(10), || children(l.pid()).is_empty()),
        "{what}: the launcher's probe session did not end"
    );
    move || {
        let mut kids = Vec::new();
        assert!(
            wait_for(Duration::from_secs(10), || {
                kids = children(l.pid());
                kids.len() == 1
            }),
            "no server for the client: {kids:?}"
        );
        kids[0]
    }
}

/// The client, in Python: it stops twice, before the login and after
/// it, for the test to look at the server's processes, and says so.
const CLIENT: &str = r#"
import imaplib, io, poplib, smtplib, ssl, sys, zlib
proto, port, mode, user, pw, cafile = sys.argv[1:7]
port = int(port)
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
def stop(what):
    print(what, flush=True)
    sys.stdin.readline()
if proto == "imap":
    if mode == "tls":
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
    else:
        m = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    if mode == "starttls":
        m.starttls(ssl_context=ctx)
    stop("pre")
    m.login(user, pw)
    if mode == "compress":
        imaplib.Commands["COMPRESS"] = ("AUTH", "SELECTED")
        typ, _ = m._simple_command("COMPRESS", "DEFLATE")
        assert typ == "OK", typ
        class Inflate(io.RawIOBase):
            def __init__(s, sock):
                s.sock, s.z, s.buf = sock, zlib.decompressobj(-15), b""
            def readable(s):
                return True
            def readinto(s, b):
                while not s.buf:
                    d = s.sock.recv(65536)
                    if not d:
                        return 0
                    s.buf = s.z.decompress(d)
                n = min(len(b), len(s.buf))
                b[:n], s.buf = s.buf[:n], s.buf[n:]
                return n
        m.file = io.BufferedReader(Inflate(m.sock))
        z = zlib.compressobj(wbits=-15)
        m.send = lambda d: m.sock.sendall(z.compress(d) + z.flush(zlib.Z_SYNC_FLUSH))
    m.select("INBOX")
    stop("post")
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print(data[0][1].decode().strip())
    m.logout()
elif proto == "pop3":
    if mode == "tls":
        m = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=20)
    else:
        m = poplib.POP3("127.0.0.1", port, timeout=20)
    if mode == "starttls":
        m.stls(context=ctx)
    stop("pre")
    m.user(user)
    m.pass_(pw)
    stop("post")
    _, lines, _ = m.retr(1)
    print([l.decode() for l in lines if l.startswith(b"Subject:")][0])
    m.quit()
else:
    if mode == "tls":
        m = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=20)
    else:
        m = smtplib.SMTP("127.0.0.1", port, timeout=20)
        m.starttls(context=ctx)
    m.ehlo("client.test")
    stop("pre")
    m.login(user, pw)
    stop("post")
    refused = m.sendmail(user + "@mail.test", ["friend@elsewhere.example"],
                         "Subject: relayed\r\n\r\nhello\r\n")
    print("sent", refused)
    m.quit()
"#;

/// A client stopped at its stops.
struct Client {
    child: Child,
    out: BufReader<ChildStdout>,
    inp: Option<ChildStdin>,
}

impl Client {
    fn start(args: &[&str]) -> Client {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(CLIENT)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the tests");
        let out = BufReader::new(child.stdout.take().unwrap());
        let inp = child.stdin.take();
        Client { child, out, inp }
    }

    /// at - wait for the client to reach stop `what`.
    fn at(&mut self, what: &str) {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        assert_eq!(l.trim_end(), what, "the client did not reach {what}");
    }

    /// go - let it go on from a stop.
    fn go(&mut self) {
        let w = self.inp.as_mut().unwrap();
        w.write_all(b"\n").unwrap();
        w.flush().unwrap();
    }

    /// finish - the rest of its output; it must succeed.
    fn finish(mut self) -> String {
        drop(self.inp.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        assert!(
            self.child.wait().unwrap().success(),
            "client failed: {rest}"
        );
        rest
    }
}

/// Who the processes should be, in one launch mode.
struct Expect {
    /// The pre-login process's uid and gid.
    front: (u32, u32),
    /// Chrooted (started as root).
    chroot: bool,
    /// The session's uid after login.
    owner: u32,
    /// The password check is root (started as root).
    check_root: bool,
}

/// check_front - the process that reads the network before login.
fn check_front(pid: u32, e: &Expect, what: &str) {
    let p = privs(pid);
    let (u, g) = e.front;
    assert_eq!(p.uids, [u, u, u, u], "{what}: uids {p:?}");
    assert_eq!(p.gids, [g, g, g, g], "{what}: gids {p:?}");
    assert!(p.groups.is_empty(), "{what}: groups {p:?}");
    assert_eq!((p.cap_eff, p.cap_prm), (0, 0), "{what}: capabilities {p:?}");
    let root = root_of(pid);
    if e.chroot {
        assert!(
            root.contains("posthorn-empty") && root.ends_with("(deleted)"),
            "{what}: chrooted into a removed empty directory, not {root}"
        );
    } else {
        assert_eq!(root, "/", "{what}");
    }
}

/// check_desk - the password check: root only when started as root,
/// and holding no connection to the client.
fn check_desk(pid: u32, e: &Expect, what: &str) {
    let p = privs(pid);
    if e.check_root {
        assert_eq!(p.uids, [0, 0, 0, 0], "{what}: {p:?}");
    } else {
        assert!(!p.uids.contains(&0), "{what}: {p:?}");
    }
    assert_eq!(tcp_fds(pid), 0, "{what}: holds the client's connection");
    for n in [0, 1] {
        assert_eq!(fd_target(pid, n), "/dev/null", "{what}: fd {n}");
    }
}

/// check_owner - the session after login.
fn check_owner(pid: u32, e: &Expect, what: &str) {
    let p = privs(pid);
    let u = e.owner;
    assert_eq!(p.uids, [u, u, u, u], "{what}: {p:?}");
    assert!(!p.gids.contains(&0), "{what}: {p:?}");
    assert_eq!((p.cap_eff, p.cap_prm), (0, 0), "{what}: {p:?}");
}

/// mailbox_server - pop3d or imapd, one launcher per mode (plain and
/// --tls), each transport in turn, its processes checked at each stop.
fn mailbox_server(
    i: &Instance,
    bin: &str,
    proto: &str,
    modes: &[&str],
    login: (&str, &str),
    e: &Expect,
    as_root: bool,
) {
    for &mode in modes {
        let args: &[&str] = if mode == "tls" { &["--tls"] } else { &[] };
        let _ = std::fs::remove_file(i.path("launcher.log"));
        let l = if as_root {
            Launcher::start_root(i, bin, args)
        } else {
            Launcher::start(i, bin, args)
        };
        let Some(l) = l else {
            panic!("systemd-socket-activate is needed (apt-get install systemd)");
        };
        let what = format!("{bin} {mode}");
        let port = l.port.to_string();
        let ca = i.path("cert.pem").to_string_lossy().into_owned();
        let desk = session_start(&l, &what);
        let mut c = Client::start(&[proto, &port, mode, login.0, login.1, &ca]);
        c.at("pre");
        let desk = desk();
        let fronts = children(desk);
        assert_eq!(fronts.len(), 1, "{what}: one pre-login process {fronts:?}");
        let front = fronts[0];
        check_front(front, e, &format!("{what}: before login"));
        check_desk(desk, e, &format!("{what}: password check"));
        c.go();
        c.at("post");
        let session = log_pid(i, &format!("login: user=<{}>", login.0));
        assert_eq!(session, desk, "{what}: the check became the session");
        check_owner(session, e, &format!("{what}: after login"));
        if mode == "tls" || mode == "starttls" {
            // The pre-login process stays as the TLS relay, as shut in
            // as before, now the session's child.
            assert!(alive(front), "{what}: the relay is gone");
            check_front(front, e, &format!("{what}: the relay"));
            assert_eq!(privs(front).ppid, session, "{what}");
        } else {
            // Plaintext: the connection went to the session itself.
            assert!(
                wait_for(Duration::from_secs(5), || !alive(front)),
                "{what}: the pre-login process outlived the handoff"
            );
        }
        assert!(children(session).iter().all(|&k| k == front), "{what}");
        c.go();
        let got = c.finish();
        assert!(got.contains("Subject: privsep"), "{what}: {got}");
    }
}

/// setup - an instance with TLS, a message for ann (virtual) and, as
/// root, for a system account, plus the accounts: (instance, login
/// account, mail user) the last two only as root.
fn setup(
    tag: &str,
) -> (
    Instance,
    Option<Account>,
    Option<Account>,
    tempfile::TempDir,
) {
    let mut i = Instance::new();
    let homes = tempfile::Builder::new()
        .prefix("posthorn-homes")
        .tempdir()
        .unwrap();
    chmod(homes.path(), 0o755);
    assert!(make_cert(&i), "openssl is needed (apt-get install openssl)");
    let (front, user) = if is_root() {
        let front = Account::add(&format!("{tag}l"), true, None, None);
        let user = Account::add(
            &format!("{tag}u"),
            false,
            Some(&homes.path().join("u")),
            Some("S3cret-pw"),
        );
        i.write_config(&format!(
            "user = \"nobody\"\nlogin_user = \"{}\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
            front.name
        ));
        let cfg = std::fs::read_to_string(&i.config)
            .unwrap()
            .replace("system_users = false\n", "system_users = true\n");
        std::fs::write(&i.config, cfg).unwrap();
        let mut d = i.cmd_root("deliver");
        d.arg(&user.name);
        let out = run_with_stdin(d, b"Subject: privsep\n\nhello\n");
        assert!(out.status.success(), "{}", text(&out.stderr));
        (Some(front), Some(user))
    } else {
        i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
        (None, None)
    };
    let out = i.run("deliver", &["ann"], b"Subject: privsep\n\nhello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    (i, front, user, homes)
}

/// expect - who the processes are in this launch mode.
fn expect(front: &Option<Account>, user: &Option<Account>) -> Expect {
    match (front, user) {
        (Some(f), Some(u)) => Expect {
            front: (f.uid, f.gid),
            chroot: true,
            owner: u.uid,
            check_root: true,
        },
        _ => Expect {
            front: (65534, 65534),
            chroot: false,
            owner: 65534,
            check_root: false,
        },
    }
}

/// as_started - one server through its launcher, as root when the tests
/// are (CI), else as the test user: each mode, each process checked.
fn as_started(tag: &str, bin: &str, proto: &str, modes: &[&str]) {
    let (i, front, user, _homes) = setup(tag);
    let e = expect(&front, &user);
    let login = match &user {
        Some(u) => (u.name.clone(), "S3cret-pw"),
        None => ("ann".to_string(), "x"),
    };
    mailbox_server(&i, bin, proto, modes, (&login.0, login.1), &e, is_root());
}

#[test]
fn imapd_processes_before_and_after_login_inetd_as_started() {
    as_started("im", "imapd", "imap", &["starttls", "tls", "compress"]);
}

#[test]
fn pop3d_processes_before_and_after_login_inetd_as_started() {
    as_started("po", "pop3d", "pop3", &["starttls", "tls", "plain"]);
}

/// As root, the same sessions started as the test user (nobody) run
/// unprivileged through and through, in the same shape.
#[test]
fn imapd_and_pop3d_processes_inetd_not_root() {
    if !is_root() {
        // Not root already: the tests above are this one.
        return;
    }
    let mut i = Instance::new();
    assert!(make_cert(&i), "openssl is needed (apt-get install openssl)");
    i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let out = i.run("deliver", &["ann"], b"Subject: privsep\n\nhello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = expect(&None, &None);
    mailbox_server(
        &i,
        "imapd",
        "imap",
        &["starttls", "compress"],
        ("ann", "x"),
        &e,
        false,
    );
    mailbox_server(&i, "pop3d", "pop3", &["tls"], ("ann", "x"), &e, false);
}

/// smtpd in submission mode: the session process is the one that reads
/// the network, before AUTH and after; the password check is its child,
/// root only when started as root, and gone once AUTH has succeeded.
#[test]
fn smtpd_submission_processes_inetd_as_started_and_not() {
    let (i, front, user, _homes) = setup("sm");
    i.init_spool();
    let mut launches = vec![(false, "ann".to_string(), "x")];
    if let Some(u) = &user {
        launches.push((true, u.name.clone(), "S3cret-pw"));
    }
    let _ = front;
    for (as_root, name, pw) in launches {
        for mode in ["starttls", "tls"] {
            let mut args = vec!["--submission"];
            if mode == "tls" {
                args.push("--tls");
            }
            let _ = std::fs::remove_file(i.path("launcher.log"));
            let l = if as_root {
                Launcher::start_root(&i, "smtpd", &args)
            } else {
                Launcher::start(&i, "smtpd", &args)
            }
            .expect("systemd-socket-activate is needed");
            let what = format!("smtpd {mode} root={as_root}");
            let port = l.port.to_string();
            let ca = i.path("cert.pem").to_string_lossy().into_owned();
            let server = session_start(&l, &what);
            let mut c = Client::start(&["smtp", &port, mode, &name, pw, &ca]);
            c.at("pre");
            let front = server();
            assert_eq!(log_pid(&i, "connect from"), front, "{what}");
            // smtpd runs as the `user` account (nobody here) either way,
            // never chrooted: its whole session needs files (recipients,
            // enqueue).
            let e = Expect {
                front: (65534, 65534),
                chroot: false,
                owner: 65534,
                check_root: as_root,
            };
            check_front(front, &e, &format!("{what}: session"));
            let desks = children(front);
            assert_eq!(desks.len(), 1, "{what}: one password check {desks:?}");
            check_desk(desks[0], &e, &format!("{what}: password check"));
            c.go();
            c.at("post");
            assert!(
                wait_for(Duration::from_secs(5), || !alive(desks[0])),
                "{what}: the password check outlived AUTH"
            );
            check_front(front, &e, &format!("{what}: after AUTH"));
            c.go();
            let got = c.finish();
            assert_eq!(got.trim(), "sent {}", "{what}");
        }
    }
}

/// A session over pipes, timed: output, log, seconds taken.
fn timed(
    i: &Instance,
    bin: &str,
    args: &[&str],
    input: &str,
    as_root: bool,
) -> (String, String, f64) {
    let mut c = if as_root { i.cmd_root(bin) } else { i.cmd(bin) };
    c.args(args);
    let t = Instant::now();
    let out = run_with_stdin(c, input.as_bytes());
    let took = t.elapsed().as_secs_f64();
    (text(&out.stdout), text(&out.stderr), took)
}

/// hole4 - for each server: `name`/`pw` (a right password for an
/// account that may not log in) gets what ann with a wrong password
/// gets, the same delay, the `auth failed` line and one more saying why.
fn hole4(i: &Instance, name: &str, pw: &str, as_root: bool) {
    let plain = |u: &str, p: &str| base64(format!("\0{u}\0{p}").as_bytes());
    for (bin, args, script) in [
        ("pop3d", &[][..], "USER {u}\r\nPASS {p}\r\nQUIT\r\n"),
        ("imapd", &[][..], "a LOGIN {u} {p}\r\nb LOGOUT\r\n"),
        (
            "smtpd",
            &["--submission"][..],
            "EHLO c.test\r\nAUTH PLAIN {b}\r\nMAIL FROM:<{u}@mail.test>\r\nRCPT TO:<friend@elsewhere.example>\r\nQUIT\r\n",
        ),
    ] {
        let run = |u: &str, p: &str| {
            let s = script
                .replace("{u}", u)
                .replace("{p}", p)
                .replace("{b}", &plain(u, p));
            timed(i, bin, args, &s, as_root)
        };
        let (wrong, _, t_wrong) = run("ann", "not-the-password");
        let (refused, log, t_refused) = run(name, pw);
        // The reply lines, the name aside (smtpd echoes nothing of it).
        let norm = |s: &str| s.replace(name, "U").replace("ann", "U");
        assert_eq!(
            norm(&refused),
            norm(&wrong),
            "{bin}: {name} answered unlike a wrong password"
        );
        assert!(
            log.contains("auth failed: method=") && log.contains(&format!("user=<{name}>")),
            "{bin}: {log}"
        );
        assert!(
            log.contains("refused before its password was checked"),
            "{bin}: {log}"
        );
        // The same throttle's first delay (1 s) before each answer: a
        // loose lower bound, never an upper one.
        assert!(
            t_wrong >= 0.9 && t_refused >= 0.9,
            "{bin}: {t_wrong} {t_refused}"
        );
        if bin == "smtpd" {
            assert!(refused.contains("535 5.7.8"), "{refused}");
            // Not logged in, so nothing is taken, let alone relayed.
            assert!(refused.contains("530 5.7.0"), "{name}: {refused}");
            assert!(!refused.contains("250 2.1.5"), "{name}: {refused}");
            assert!(
                !log.contains(&format!("login: user=<{name}>, method=")),
                "{log}"
            );
        }
    }
}

/// base64 - standard base64 (RFC 4648), for AUTH PLAIN.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &x)| n | u32::from(x) << (16 - 8 * k));
        for k in 0..4 {
            if k <= c.len() {
                o.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// Issue 14, hole 4, from the users file: root (uid 0) and a uid below
/// first_valid_uid, with their right passwords.
#[test]
fn root_and_low_uids_get_a_wrong_passwords_answer_and_delay() {
    let i = Instance::new();
    i.init_spool();
    let home = i.path("home/ann").to_string_lossy().into_owned();
    let users = std::fs::read_to_string(i.path("users")).unwrap();
    i.write(
        "users",
        &format!(
            "{users}root:{{PLAIN}}rootpw:0:0::{home}::\nlowly:{{PLAIN}}lowpw:999:999::{home}::\n"
        ),
    );
    hole4(&i, "root", "rootpw", false);
    hole4(&i, "lowly", "lowpw", false);
}

/// As root: a real system account (useradd --system, uid below 1000)
/// with a password in /etc/shadow is refused the same way, by each
/// server started as root.
#[test]
fn as_root_a_system_account_gets_a_wrong_passwords_answer() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let mut i = Instance::new();
    i.init_spool();
    let front = Account::add("h4l", true, None, None);
    let sys = Account::add("h4s", true, None, Some("Sys-pw-1"));
    assert!(sys.uid < 1000, "{}", sys.uid);
    i.write_config(&format!(
        "user = \"nobody\"\nlogin_user = \"{}\"",
        front.name
    ));
    let cfg = std::fs::read_to_string(&i.config)
        .unwrap()
        .replace("system_users = false\n", "system_users = true\n");
    std::fs::write(&i.config, cfg).unwrap();
    hole4(&i, &sys.name, "Sys-pw-1", true);
}
