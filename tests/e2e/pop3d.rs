//! pop3d: golden sessions over pipes, and real clients (Python's poplib,
//! plain and with STLS) through systemd-socket-activate.

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// three - an instance with three messages for ann, the second with a line
/// that starts with a dot; returns the Maildir files as (base name, bytes),
/// in delivery order.
fn three() -> Instance {
    let i = Instance::new();
    i.init_spool();
    for (n, body) in ["first\n", ".hidden dot line\n..two\nend\n", "third\n"]
        .iter()
        .enumerate()
    {
        let msg = format!("Subject: m{}\n\n{body}", n + 1);
        let out = i.sendmail(&["-i", "-f", "bob@mail.test", "ann"], msg.as_bytes());
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Distinct delivery times keep the expected order obvious.
        i.qrun_once();
    }
    assert_eq!(i.maildir("ann").len(), 3);
    i
}

/// files - ann's messages as (directory/name) paths, sorted by pop3d's order.
fn files(i: &Instance) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(i.path("home/ann/Maildir").join(sub)) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    let key = |p: &std::path::PathBuf| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        let secs: u64 = n.split('.').next().unwrap().parse().unwrap();
        let usec: u64 = n.split('.').nth(1).unwrap()[1..]
            .split('P')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (secs, usec, n)
    };
    v.sort_by_key(key);
    v
}

/// base - the UIDL pop3d gives a file: its name before `:2,`.
fn base(p: &std::path::Path) -> String {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    n.split(":2,").next().unwrap().to_string()
}

/// pop - one session over pipes: `script` (lines joined with CRLF) in,
/// the reply lines out (CRLF checked and removed), and stderr.
fn pop(i: &Instance, script: &[&str]) -> (Vec<String>, String) {
    let mut input = script.join("\r\n");
    input.push_str("\r\n");
    let out = i.run("pop3d", &[], input.as_bytes());
    let stdout = text(&out.stdout);
    assert!(
        stdout.is_empty() || stdout.ends_with("\r\n"),
        "unterminated: {stdout:?}"
    );
    let lines: Vec<String> = stdout
        .split_terminator("\r\n")
        .map(|l| {
            assert!(!l.contains('\n'), "bare LF in {l:?}");
            l.to_string()
        })
        .collect();
    (lines, text(&out.stderr))
}

#[test]
fn golden_session_stat_list_uidl_retr_top() {
    let i = three();
    let f = files(&i);
    let sizes: Vec<usize> = f
        .iter()
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            b.len() + b.iter().filter(|&&c| c == b'\n').count()
        })
        .collect();
    let total: usize = sizes.iter().sum();
    let (l, err) = pop(
        &i,
        &[
            "CAPA", "USER ann", "PASS x", "STAT", "LIST", "LIST 2", "UIDL", "UIDL 3", "RETR 2",
            "TOP 1 0", "LIST 4", "QUIT",
        ],
    );
    let mut want: Vec<String> = [
        "+OK Posthorn POP3 ready",
        "+OK capability list follows",
        "TOP",
        "UIDL",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
        "USER",
        "SASL PLAIN LOGIN",
        "IMPLEMENTATION Posthorn",
        ".",
        "+OK send PASS",
    ]
    .map(String::from)
    .to_vec();
    want.push(format!("+OK maildrop has 3 messages ({total} octets)"));
    want.push(format!("+OK 3 {total}"));
    want.push(format!("+OK 3 messages ({total} octets)"));
    for (n, s) in sizes.iter().enumerate() {
        want.push(format!("{} {s}", n + 1));
    }
    want.push(".".into());
    want.push(format!("+OK 2 {}", sizes[1]));
    want.push("+OK unique-id listing follows".into());
    for (n, p) in f.iter().enumerate() {
        want.push(format!("{} {}", n + 1, base(p)));
    }
    want.push(".".into());
    want.push(format!("+OK 3 {}", base(&f[2])));
    assert_eq!(l[..want.len()], want[..], "{err}");
    // RETR 2: the header, a blank line, the body dot-stuffed, the end dot.
    let rest = &l[want.len()..];
    assert_eq!(rest[0], format!("+OK {} octets", sizes[1]));
    let blank = rest.iter().position(String::is_empty).unwrap();
    assert!(
        rest[1..blank].iter().any(|h| h == "Subject: m2"),
        "{rest:?}"
    );
    assert_eq!(
        rest[blank + 1..blank + 5],
        ["..hidden dot line", "...two", "end", "."]
    );
    // TOP 1 0: the whole header and the blank line, no body.
    let rest = &rest[blank + 5..];
    assert!(rest[0].starts_with("+OK"), "{rest:?}");
    let blank = rest.iter().position(String::is_empty).unwrap();
    assert!(rest[1..blank].iter().any(|h| h == "Subject: m1"));
    assert_eq!(rest[blank + 1], ".");
    assert_eq!(
        rest[blank + 2..],
        [
            "-ERR no such message",
            "+OK Posthorn POP3 signing off (3 messages left)"
        ]
    );
    assert!(err.contains("connect from local"), "{err}");
    assert!(
        err.contains("login: user=<ann>, method=USER, client=local"),
        "{err}"
    );
    assert!(err.contains("retr=1/"), "{err}");
    // RETR'd message 2 is now seen (cur/, :2,S); the others are untouched.
    let after = files(&i);
    assert_eq!(after.len(), 3);
    assert!(after[1].to_string_lossy().ends_with(":2,S"), "{after:?}");
    assert!(after[1].parent().unwrap().ends_with("cur"));
    assert!(after[0].parent().unwrap().ends_with("new"));
}

#[test]
fn bad_password_is_delayed_logged_and_says_nothing_more() {
    let i = three();
    let start = Instant::now();
    let (l, err) = pop(
        &i,
        &["USER ann", "PASS wrong", "USER nosuch", "PASS x", "QUIT"],
    );
    assert!(
        start.elapsed() >= Duration::from_millis(2900),
        "1 s then 2 s"
    );
    assert_eq!(
        l,
        [
            "+OK Posthorn POP3 ready",
            "+OK send PASS",
            "-ERR [AUTH] authentication failed",
            "+OK send PASS",
            "-ERR [AUTH] authentication failed",
            "+OK Posthorn POP3 signing off",
        ]
    );
    assert!(
        err.contains("auth failed: method=USER, user=<ann>, client=local"),
        "{err}"
    );
    assert!(err.contains("auth failed: method=USER, user=<nosuch>, client=local"));
    assert!(!err.contains("wrong"), "no password in the log: {err}");
}

#[test]
fn auth_plain_with_initial_response_and_login() {
    let i = three();
    // base64("\0ann\0x") and base64("ann"), base64("x").
    let (l, _) = pop(&i, &["AUTH PLAIN AGFubgB4", "STAT", "QUIT"]);
    assert!(l[1].starts_with("+OK maildrop has 3 messages ("), "{l:?}");
    assert!(l[2].starts_with("+OK 3 "), "{l:?}");
    let (l, err) = pop(&i, &["AUTH LOGIN", "YW5u", "eA==", "QUIT"]);
    assert_eq!(l[1], "+ VXNlcm5hbWU6");
    assert_eq!(l[2], "+ UGFzc3dvcmQ6");
    assert!(l[3].starts_with("+OK maildrop has 3"), "{l:?}");
    assert!(err.contains("method=LOGIN"), "{err}");
    // A wrong password through AUTH: the same answer as USER/PASS.
    let (l, _) = pop(&i, &["AUTH PLAIN AGFubgB5", "QUIT"]);
    assert_eq!(l[1], "-ERR [AUTH] authentication failed");
}

#[test]
fn dele_then_quit_removes_dele_then_drop_removes_nothing_rset_undoes() {
    let i = three();
    let f = files(&i);
    // Dropped connection (EOF, no QUIT): nothing deleted.
    let (l, _) = pop(&i, &["USER ann", "PASS x", "DELE 1", "DELE 1"]);
    assert_eq!(l[3], "+OK message 1 deleted");
    assert_eq!(l[4], "-ERR message 1 already deleted");
    assert_eq!(files(&i), f);
    // RSET unmarks.
    let (l, _) = pop(
        &i,
        &["USER ann", "PASS x", "DELE 1", "STAT", "RSET", "QUIT"],
    );
    assert!(l[4].starts_with("+OK 2 "), "{l:?}");
    assert!(l[5].starts_with("+OK maildrop has 3 messages"), "{l:?}");
    assert_eq!(files(&i), f);
    // QUIT in TRANSACTION: UPDATE removes the file.
    let (l, err) = pop(&i, &["USER ann", "PASS x", "DELE 1", "QUIT"]);
    assert_eq!(l[4], "+OK Posthorn POP3 signing off (2 messages left)");
    assert_eq!(files(&i), f[1..]);
    assert!(err.contains("del=1"), "{err}");
    // The numbering starts again at 1 in the next session.
    let (l, _) = pop(&i, &["USER ann", "PASS x", "UIDL 1", "QUIT"]);
    assert_eq!(l[3], format!("+OK 1 {}", base(&f[1])));
}

#[test]
fn kill_9_after_dele_deletes_nothing_and_the_lock_is_broken_after() {
    let i = three();
    let f = files(&i);
    let mut s = Session::start(&i);
    s.send("USER ann\r\nPASS x\r\n");
    assert_eq!(s.line(), "+OK send PASS");
    assert!(s.line().starts_with("+OK maildrop has 3"));
    s.send("DELE 1\r\nDELE 2\r\nNOOP\r\n");
    s.line();
    s.line();
    assert_eq!(s.line(), "+OK");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    assert_eq!(files(&i), f);
    assert!(i.path("home/ann/Maildir/posthorn-pop3.lock").exists());
    let (l, _) = pop(&i, &["USER ann", "PASS x", "QUIT"]);
    assert!(l[2].starts_with("+OK maildrop has 3"), "stale lock: {l:?}");
}

/// A session held open over pipes, read line by line.
struct Session {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Session {
    fn start(i: &Instance) -> Session {
        Session::start_cmd(i.cmd("pop3d"))
    }
    fn start_cmd(mut c: Command) -> Session {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut s = Session { child, out };
        assert_eq!(s.line(), "+OK Posthorn POP3 ready");
        s
    }
    fn send(&mut self, t: &str) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(t.as_bytes())
            .unwrap();
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        assert!(l.ends_with("\r\n"), "{l:?}");
        l.trim_end().to_string()
    }
}

#[test]
fn second_session_gets_in_use_and_uidl_is_stable() {
    let i = three();
    let mut s = Session::start(&i);
    s.send("USER ann\r\nPASS x\r\nUIDL\r\n");
    s.line();
    s.line();
    let mut first = Vec::new();
    loop {
        let l = s.line();
        if l == "." {
            break;
        }
        first.push(l);
    }
    let (l, _) = pop(&i, &["USER ann", "PASS x", "STAT"]);
    assert_eq!(
        l[2], "-ERR [IN-USE] maildrop is locked by another POP3 session",
        "{l:?}"
    );
    assert_eq!(l.len(), 3, "closed after [IN-USE]");
    s.send("QUIT\r\n");
    assert!(s.line().starts_with("+OK Posthorn POP3 signing off"));
    s.child.wait().unwrap();
    let (l, _) = pop(&i, &["USER ann", "PASS x", "UIDL", "QUIT"]);
    assert_eq!(l[3], "+OK unique-id listing follows");
    assert_eq!(l[4..7], first[1..], "same ids in the next session");
}

#[test]
fn bad_commands_and_long_lines_close_the_session() {
    let i = three();
    let long = format!("NOOP {}", "x".repeat(300));
    let mut script = vec!["STAT", "RETR 1", long.as_str()];
    script.extend(["BOGUS"; 10]);
    let (l, _) = pop(&i, &script);
    assert_eq!(l[1], "-ERR not allowed before login");
    assert_eq!(l[3], "-ERR line too long");
    assert_eq!(l.last().unwrap(), "-ERR too many bad commands, closing");
    assert_eq!(l.len(), 11, "{l:?}");
}

#[test]
fn python_poplib_fetches_everything_through_socket_activation() {
    let i = three();
    let want = i.maildir("ann");
    let Some(l) = Launcher::start(&i, "pop3d", &[]) else {
        return;
    };
    let got = python(
        r#"
import poplib, sys, json
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user("ann"); p.pass_("x")
n, size = p.stat()
msgs = [b"\n".join(p.retr(k + 1)[1]).decode() + "\n" for k in range(n)]
uidl = p.uidl()[1]
caps = p.capa()
p.quit()
print(json.dumps({"n": n, "msgs": msgs, "uidl": len(uidl), "caps": sorted(caps)}))
"#,
        &[&l.port.to_string()],
    );
    assert!(got.contains("\"n\": 3"), "{got}");
    assert!(got.contains("\"uidl\": 3"), "{got}");
    assert!(got.contains("\"IMPLEMENTATION\""), "{got}");
    for m in &want {
        let body = text(&body(m));
        let escaped = body.replace('\n', "\\n");
        assert!(got.contains(&escaped), "{escaped} in {got}");
    }
    // Seen by RETR: all moved to cur/ with S.
    let names: Vec<String> = files(&i)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.contains("/cur/") && n.ends_with(":2,S")),
        "{names:?}"
    );
}

/// tls_instance - three messages and a self-signed certificate in [tls].
fn tls_instance() -> Option<Instance> {
    let mut i = three();
    if !make_cert(&i) {
        return None;
    }
    i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    Some(i)
}

#[test]
fn stls_with_python_and_no_plaintext_after_stls() {
    let Some(i) = tls_instance() else {
        return;
    };
    // Pipelined plaintext after STLS must not be answered (CVE-2011-0411).
    let (l, err) = pop(&i, &["CAPA", "STLS", "CAPA"]);
    assert!(l.contains(&"STLS".to_string()), "{l:?}");
    assert_eq!(l.last().unwrap(), "+OK begin TLS negotiation", "{l:?}");
    assert_eq!(
        l.iter().filter(|x| x.starts_with("+OK capability")).count(),
        1
    );
    assert!(err.contains("plaintext pipelined after STLS"), "{err}");
    let Some(launcher) = Launcher::start(&i, "pop3d", &[]) else {
        return;
    };
    let got = python(
        r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.stls(context=ctx)
caps = p.capa()
assert "STLS" not in caps, caps
p.user("ann"); p.pass_("x")
print(p.stat()[0], p.sock.version(), len(p.retr(3)[1]))
p.quit()
"#,
        &[
            &launcher.port.to_string(),
            &i.path("cert.pem").to_string_lossy(),
        ],
    );
    assert!(got.starts_with("3 TLSv1."), "{got}");
}

#[test]
fn implicit_tls_with_python_pop3_ssl() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(launcher) = Launcher::start(&i, "pop3d", &["--tls"]) else {
        return;
    };
    let got = python(
        r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), timeout=20, context=ctx)
print(p.getwelcome().decode())
p.user("ann"); p.pass_("x")
print(p.stat()[0])
p.quit()
"#,
        &[
            &launcher.port.to_string(),
            &i.path("cert.pem").to_string_lossy(),
        ],
    );
    assert_eq!(got, "+OK Posthorn POP3 ready\n3\n");
}

#[test]
fn mail_arriving_during_a_session_waits_and_vanished_files_are_skipped() {
    let i = three();
    let mut s = Session::start(&i);
    s.send("USER ann\r\nPASS x\r\n");
    s.line();
    assert!(s.line().starts_with("+OK maildrop has 3 messages"));
    let out = i.sendmail(&["-i", "ann"], b"Subject: m4\n\nlate\n");
    assert!(out.status.success());
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 4);
    // Another client removed message 1 meanwhile: -ERR, and the rest works.
    std::fs::remove_file(&files(&i)[0]).unwrap();
    s.send("STAT\r\nRETR 1\r\nLIST 3\r\nDELE 1\r\nQUIT\r\n");
    assert!(
        s.line().starts_with("+OK 3 "),
        "the new message is not seen yet"
    );
    assert!(s.line().starts_with("-ERR message 1 is gone"));
    assert!(s.line().starts_with("+OK 3 "));
    assert_eq!(s.line(), "+OK message 1 deleted");
    assert_eq!(s.line(), "+OK Posthorn POP3 signing off (2 messages left)");
    s.child.wait().unwrap();
    let (l, _) = pop(&i, &["USER ann", "PASS x", "STAT", "QUIT"]);
    assert!(l[3].starts_with("+OK 3 "), "{l:?}");
}

/// uids - the Uid: line of /proc/PID/status (real, effective, saved, fs).
fn uids(pid: u32) -> String {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn as_root_the_login_account_before_login_and_the_owner_after() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let mut i = three();
    let homes = tempfile::Builder::new()
        .prefix("posthorn-homes")
        .tempdir()
        .unwrap();
    chmod(homes.path(), 0o755);
    let name = format!("phpop{}", std::process::id() % 100000);
    let home = homes.path().join(&name);
    let st = Command::new("useradd")
        .args(["-m", "-d"])
        .arg(&home)
        .args(["-s", "/usr/sbin/nologin", &name])
        .status()
        .unwrap();
    assert!(st.success());
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("userdel").args(["-r", &self.0]).status();
        }
    }
    let _gone = Gone(name.clone());
    let mut ch = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin
        .take()
        .unwrap()
        .write_all(format!("{name}:S3cret-pw\n").as_bytes())
        .unwrap();
    assert!(ch.wait().unwrap().success());
    let uid: u32 = text(
        &Command::new("id")
            .args(["-u", &name])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    i.write_config("user = \"nobody\"\nlogin_user = \"nobody\"");
    let cfg = std::fs::read_to_string(&i.config)
        .unwrap()
        .replace("system_users = false\n", "system_users = true\n");
    std::fs::write(&i.config, cfg).unwrap();
    // deliver, started as root, writes the Maildir as the user.
    let mut d = i.cmd_root("deliver");
    d.arg(&name);
    let out = run_with_stdin(d, b"Subject: for a system user\n\nhello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut s = Session::start_cmd(i.cmd_root("pop3d"));
    let pid = s.child.id();
    // Before login: the process started is the password check (root),
    // the one reading the client is its child (login_user, for good).
    assert_eq!(uids(pid), "0 0 0 0", "the password check");
    let front: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|st| {
                st.lines().any(|l| {
                    l.strip_prefix("PPid:")
                        .is_some_and(|v| v.trim() == pid.to_string())
                })
            })
        })
        .collect();
    assert_eq!(front.len(), 1, "{front:?}");
    assert_eq!(uids(front[0]), "65534 65534 65534 65534", "before login");
    s.send(&format!("USER {name}\r\nPASS S3cret-pw\r\n"));
    s.line();
    assert!(s.line().starts_with("+OK maildrop has 1 messages ("));
    assert_eq!(
        uids(pid),
        format!("{uid} {uid} {uid} {uid}"),
        "the owner for good"
    );
    use std::os::unix::fs::MetadataExt;
    let lock = home.join("Maildir/posthorn-pop3.lock");
    assert_eq!(std::fs::metadata(&lock).unwrap().uid(), uid);
    s.send("RETR 1\r\nQUIT\r\n");
    while s.line() != "." {}
    assert!(s.line().starts_with("+OK Posthorn POP3 signing off"));
    s.child.wait().unwrap();
    // A virtual user without a uid: the `user` account (nobody).
    let mut s = Session::start_cmd(i.cmd_root("pop3d"));
    let pid = s.child.id();
    s.send("USER ann\r\nPASS x\r\n");
    s.line();
    assert!(s.line().starts_with("+OK maildrop has 3"));
    assert_eq!(uids(pid), "65534 65534 65534 65534");
    s.send("QUIT\r\n");
    s.line();
    s.child.wait().unwrap();
}

/// vm_hwm_kb - the peak resident size of a process, from /proc.
fn vm_hwm_kb(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

#[test]
fn a_big_message_is_streamed_not_held() {
    let i = Instance::new();
    let new = i.path("home/ann/Maildir/new");
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(i.path("home/ann/Maildir").join(d)).unwrap();
    }
    // 64 MB in lines of 64 octets, every 8th starting with a dot.
    let mut msg = b"Subject: big\n\n".to_vec();
    let lines = 1 << 20;
    for n in 0..lines {
        msg.extend_from_slice(if n % 8 == 0 { b"." } else { b"x" });
        msg.extend_from_slice(&[b'y'; 62]);
        msg.push(b'\n');
    }
    let crlf = msg.len() + lines + 2;
    std::fs::write(
        new.join(format!("1700000000.M1P1.{HOST},S={}", msg.len())),
        &msg,
    )
    .unwrap();
    let mut s = Session::start(&i);
    s.send("USER ann\r\nPASS x\r\nRETR 1\r\n");
    s.line();
    assert_eq!(
        s.line(),
        format!("+OK maildrop has 1 messages ({crlf} octets)")
    );
    assert_eq!(s.line(), format!("+OK {crlf} octets"));
    let (mut got, mut dotted) = (0usize, 0usize);
    loop {
        let mut l = Vec::new();
        s.out.read_until(b'\n', &mut l).unwrap();
        assert!(l.ends_with(b"\r\n"));
        if l == b".\r\n" {
            break;
        }
        if l.starts_with(b"..") {
            dotted += 1;
        }
        got += l.len();
    }
    assert_eq!(dotted, lines / 8);
    assert_eq!(got - dotted, crlf);
    let peak = vm_hwm_kb(s.child.id());
    assert!(peak < 24 * 1024, "peak RSS {peak} kB for a 64 MB message");
    s.send("QUIT\r\n");
    assert!(s.line().starts_with("+OK"));
    s.child.wait().unwrap();
}

#[test]
fn proxy_header_from_a_trusted_proxy_names_the_client() {
    let mut i = three();
    i.write_config("[proxy]\ntrusted = [\"127.0.0.1\"]\n");
    let run = |first: &str| {
        let mut c = i.cmd("pop3d");
        c.env("REMOTE_ADDR", "127.0.0.1");
        let out = run_with_stdin(c, format!("{first}CAPA\r\nUSER ann\r\nQUIT\r\n").as_bytes());
        (text(&out.stdout), text(&out.stderr))
    };
    let (out, err) = run("PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\n");
    assert!(err.contains("connect from unknown[192.0.2.7]"), "{err}");
    // The real client is not on loopback: no passwords without TLS.
    assert!(!out.contains("USER\r\n"), "{out}");
    assert!(
        out.contains("-ERR [AUTH] plaintext authentication disallowed"),
        "{out}"
    );
    // Garbage where the header belongs: closed before the greeting.
    let (out, err) = run("HELLO\r\n");
    assert_eq!(out, "");
    assert!(err.contains("bad PROXY header"), "{err}");
    // From an untrusted address the header is just a bad command.
    let mut c = i.cmd("pop3d");
    c.env("REMOTE_ADDR", "192.0.2.9");
    let out = run_with_stdin(c, b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\nQUIT\r\n");
    assert!(text(&out.stdout).contains("-ERR unknown command"));
    assert!(text(&out.stderr).contains("connect from unknown[192.0.2.9]"));
}

#[test]
fn no_flag_updates_leaves_retrieved_mail_new() {
    let i = three();
    let before = files(&i);
    let out = i.run(
        "pop3d",
        &["--no-flag-updates"],
        b"USER ann\r\nPASS x\r\nRETR 1\r\nRETR 2\r\nQUIT\r\n",
    );
    let t = text(&out.stdout);
    assert!(
        t.ends_with("signing off (3 messages left)\r\n"),
        "{t}\n{}",
        text(&out.stderr)
    );
    assert_eq!(files(&i), before);
    let out = i.run("pop3d", &["--bogus"], b"");
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("usage: pop3d [-C file] [--tls] [--no-flag-updates]"));
}

/// client - a mail fetcher run as the test user with HOME in the instance;
/// None (skip) when it is not installed.
fn client(i: &Instance, prog: &str) -> Option<Command> {
    if Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: {prog} is not installed (apt-get install fetchmail getmail6)");
        return None;
    }
    let mut c = Command::new(prog);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &i.root)
        .env("TZ", "UTC")
        .current_dir(&i.root);
    if let Some((u, g)) = run_ids() {
        use std::os::unix::process::CommandExt;
        c.uid(u).gid(g);
    }
    Some(c)
}

/// fetched - how many messages a Maildir holds.
fn count(i: &Instance, rel: &str) -> usize {
    i.maildir_at(rel).len()
}

#[test]
fn fetchmail_into_deliver_with_keep_and_without() {
    // fetchmail 6.4 insists on STLS by default: give it TLS, as in real life.
    let Some(i) = tls_instance() else {
        return;
    };
    if client(&i, "fetchmail").is_none() {
        return;
    }
    let Some(l) = Launcher::start(&i, "pop3d", &[]) else {
        return;
    };
    let rc = |keep: &str| {
        let text = format!(
            "set no syslog\npoll 127.0.0.1 service {} protocol pop3 auth password uidl\n  user \"ann\" password \"x\" is \"bob\" here\n  mda \"{} -C {} bob\"\n  {keep} no sslcertck\n",
            l.port,
            bin_dir().join("deliver").display(),
            i.config.display()
        );
        i.write("fetchmailrc", &text);
        chmod(&i.path("fetchmailrc"), 0o600);
    };
    let fetch = || {
        let mut c = client(&i, "fetchmail").unwrap();
        c.arg("-f")
            .arg(i.path("fetchmailrc"))
            .arg("--idfile")
            .arg(i.path("fetchids"))
            .arg("--nosyslog");
        let out = c.output().unwrap();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    rc("keep");
    i.cmd("pop3d"); // hand the new files to the test user
    let (code, log) = fetch();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&i, "home/bob/Maildir"), 3, "{log}");
    assert_eq!(count(&i, "home/ann/Maildir"), 3, "keep");
    // Kept and tracked by UIDL: nothing again (fetchmail exits 1: no mail).
    let (code, log) = fetch();
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(count(&i, "home/bob/Maildir"), 3);
    // A new message only, then without keep: everything left is removed.
    let out = i.sendmail(&["-i", "ann"], b"Subject: m4\n\nfour\n");
    assert!(out.status.success());
    i.qrun_once();
    rc("nokeep");
    let (code, log) = fetch();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&i, "home/bob/Maildir"), 4, "{log}");
    let bodies: Vec<String> = i.maildir("bob").iter().map(|m| text(&body(m))).collect();
    assert!(
        bodies.iter().any(|b| b == ".hidden dot line\n..two\nend\n"),
        "{bodies:?}"
    );
    assert!(bodies.iter().any(|b| b == "four\n"));
    let log = std::fs::read_to_string(i.path("launcher.log")).unwrap();
    assert!(
        log.contains("login: user=<ann>, method=USER, client=unknown[127.0.0.1]"),
        "{log}"
    );
}

#[test]
fn getmail_tracks_uidls_across_runs() {
    let i = three();
    if client(&i, "getmail").is_none() {
        return;
    }
    let Some(l) = Launcher::start(&i, "pop3d", &[]) else {
        return;
    };
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(i.path("fetched").join(d)).unwrap();
    }
    std::fs::create_dir_all(i.path("getmail")).unwrap();
    i.write(
        "getmail/rc",
        &format!(
            "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\nport = {}\nusername = ann\npassword = x\n\n[destination]\ntype = Maildir\npath = {}/\n\n[options]\nread_all = false\ndelete = false\nverbose = 1\n",
            l.port,
            i.path("fetched").display()
        ),
    );
    i.cmd("pop3d"); // hand the new files to the test user
    let get = || {
        let mut c = client(&i, "getmail").unwrap();
        c.arg("--getmaildir")
            .arg(i.path("getmail"))
            .arg("--rcfile")
            .arg("rc");
        let out = c.output().unwrap();
        let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{log}");
        log
    };
    let log = get();
    assert_eq!(count(&i, "fetched"), 3, "{log}");
    let log = get();
    assert_eq!(count(&i, "fetched"), 3, "nothing fetched twice: {log}");
    let out = i.sendmail(&["-i", "ann"], b"Subject: m4\n\nfour\n");
    assert!(out.status.success());
    i.qrun_once();
    let log = get();
    assert_eq!(count(&i, "fetched"), 4, "only the new one: {log}");
    assert_eq!(count(&i, "home/ann/Maildir"), 4, "delete = false");
}

/// openssl s_client completes STLS and the session goes on under TLS.
#[test]
fn openssl_s_client_starttls_pop3() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "pop3d", &[]) else {
        return;
    };
    let o = s_client(
        l.port,
        "pop3",
        &[("USER ann", "+OK"), ("PASS x", "+OK"), ("QUIT", "+OK")],
    );
    assert!(
        o.starts_with("+OK send PASS\r\n+OK maildrop has 3 messages"),
        "{o}"
    );
}
