//! smtpd: golden session transcripts over pipes, the open-relay and
//! smuggling probes, and real clients (Python's smtplib, openssl s_client,
//! swaks) through systemd-socket-activate.

use crate::harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// data_dir - tests/data/smtpd.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/smtpd")
}

/// normalize - queue IDs vary from run to run.
fn normalize(out: &str) -> String {
    let mut s = String::new();
    for line in out.split_inclusive('\n') {
        match line.find("queued as ") {
            Some(i) => {
                s.push_str(&line[..i + 10]);
                s.push_str("<ID>\r\n");
            }
            None => s.push_str(line),
        }
    }
    s
}

/// session - one smtpd session over pipes: `input` in, replies and log out.
fn session(i: &Instance, args: &[&str], input: &[u8]) -> (String, String) {
    let out = i.run("smtpd", args, input);
    let stdout = text(&out.stdout);
    for l in stdout.split_inclusive('\n') {
        assert!(
            l.ends_with("\r\n") && !l[..l.len() - 2].contains('\r'),
            "{l:?}"
        );
    }
    (stdout, text(&out.stderr))
}

/// Every tests/data/smtpd/NAME.in gives NAME.out (queue IDs as <ID>); a
/// name starting with `submission` runs with --submission. And whatever
/// the transcript, the spool holds exactly as many new messages as it
/// says "queued as": a refused or smuggled message is never queued.
/// POSTHORN_BLESS=1 rewrites the .out files (review them before committing).
#[test]
fn golden_transcripts() {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".in").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let bless = std::env::var_os("POSTHORN_BLESS").is_some();
    let mut failed = Vec::new();
    for name in &names {
        let i = Instance::new();
        i.init_spool();
        let input = std::fs::read(data_dir().join(format!("{name}.in"))).unwrap();
        let args: &[&str] = if name.starts_with("submission") {
            &["--submission"]
        } else {
            &[]
        };
        let (out, log) = session(&i, args, &input);
        let got = normalize(&out);
        let queued = got.matches("queued as <ID>").count();
        assert_eq!(
            i.queue_files().len(),
            queued,
            "{name}: the spool disagrees with the replies\n{got}\n{log}"
        );
        let want_path = data_dir().join(format!("{name}.out"));
        if bless {
            std::fs::write(&want_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&want_path).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "--- {name}: want\n{want}--- got\n{got}--- log\n{log}"
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The transcripts' messages arrive as sent: the basic one delivered
/// through qrun, dots unstuffed, our Received: on top with the queue ID.
#[test]
fn accepted_mail_is_delivered_with_received_and_unstuffed() {
    let i = Instance::new();
    i.init_spool();
    let input = std::fs::read(data_dir().join("basic.in")).unwrap();
    let (out, _) = session(&i, &[], &input);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("250 2.0.0 Ok: queued as "))
        .unwrap()
        .trim()
        .to_string();
    i.qrun_once();
    let msgs = i.maildir("ann");
    assert_eq!(msgs.len(), 1);
    let m = text(&msgs[0]);
    assert!(!m.contains('\r'), "{m:?}");
    let rcvd = header(&msgs[0], "Received").unwrap();
    assert!(
        rcvd.starts_with("from client.example (local)")
            && rcvd.contains(&format!("with ESMTP id {id}")),
        "{rcvd}"
    );
    assert!(rcvd.contains("for <ann@mail.test>"), "{rcvd}");
    assert_eq!(
        text(&body(&msgs[0])),
        "hello\n.a line that starts with a dot\n"
    );
}

/// DSN parameters and the body type travel with the message into the
/// queue: a NOTIFY=SUCCESS recipient gets its success report.
#[test]
fn dsn_parameters_are_kept_for_the_queue() {
    let i = Instance::new();
    i.init_spool();
    let input = "EHLO c.example\r\nMAIL FROM:<bob@mail.test> RET=HDRS ENVID=env+2B1 BODY=8BITMIME\r\nRCPT TO:<ann@mail.test> NOTIFY=SUCCESS ORCPT=rfc822;ann+40mail.test\r\nDATA\r\nSubject: dsn\r\n\r\nx\r\n.\r\nQUIT\r\n";
    let (out, log) = session(&i, &[], input.as_bytes());
    assert!(out.contains("queued as"), "{out}{log}");
    let q = std::fs::read(i.path("spool/incoming").join(&i.queue_files()[0])).unwrap();
    let q = text(&q);
    for rec in [
        "\nRHDRS\n",
        "\nEenv+2B1\n",
        "\nB8BITMIME\n",
        "\nNSUCCESS\n",
        "\nOrfc822;ann+40mail.test\n",
    ] {
        assert!(q.contains(rec), "{rec:?} in {q}");
    }
    i.qrun_once();
    // ann's message, and bob's success report (NOTIFY=SUCCESS).
    assert_eq!(i.maildir("ann").len(), 1);
    let reports = i.maildir("bob");
    assert_eq!(reports.len(), 1);
    assert!(
        text(&reports[0]).contains("Action: delivered"),
        "{}",
        text(&reports[0])
    );
}

/// The classic open-relay patterns, unauthenticated, in MX mode and in
/// submission mode: every one refused, nothing queued.
#[test]
fn no_open_relay_in_any_mode() {
    let patterns = [
        "<victim@elsewhere.example>",
        "<user%elsewhere.example@mail.test>",
        "<\"user@elsewhere.example\"@mail.test>",
        "<@mail.test:user@elsewhere.example>",
        "<@mail.test,@other.example:user@elsewhere.example>",
        "<user@[192.0.2.1]>",
        "<user@[127.0.0.1]>",
        "<elsewhere.example!user@mail.test>",
        "<user@elsewhere.example.>",
        "<user@mail.test.elsewhere.example>",
        "<user@elsewhere.example@mail.test>",
    ];
    for args in [&[][..], &["--submission"][..]] {
        for sender in ["<spammer@evil.example>", "<>", "<ann@mail.test>"] {
            let i = Instance::new();
            i.init_spool();
            let mut input = format!("EHLO evil.example\r\nMAIL FROM:{sender}\r\n");
            for p in patterns {
                input.push_str(&format!("RCPT TO:{p}\r\n"));
            }
            input.push_str("DATA\r\nSubject: relay\r\n\r\nspam\r\n.\r\nQUIT\r\n");
            let (out, log) = session(&i, args, input.as_bytes());
            assert!(!out.contains("2.1.5"), "{args:?} {sender}: {out}");
            assert!(!out.contains("queued"), "{args:?} {sender}: {out}");
            assert!(i.queue_files().is_empty(), "{args:?} {sender}: {log}");
        }
    }
}

/// Smuggling probes: a bare line end before the dot never ends the data,
/// and the message smuggled behind it is never queued (CVE-2023-51764).
#[test]
fn smuggling_probes_never_end_data() {
    for probe in ["\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r", "\r.\r\n"] {
        let i = Instance::new();
        i.init_spool();
        let input = format!(
            "EHLO c.example\r\nMAIL FROM:<bob@remote.example>\r\nRCPT TO:<ann@mail.test>\r\nDATA\r\nSubject: first\r\n\r\nbody{probe}MAIL FROM:<smuggled@remote.example>\r\nRCPT TO:<carl@mail.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n"
        );
        let (out, log) = session(&i, &[], input.as_bytes());
        assert!(
            out.contains("550 5.5.2 Error: bare <CR> or <LF> in message"),
            "{probe:?}: {out}"
        );
        // One 354 only: the smuggled DATA was message text.
        assert_eq!(out.matches("354 ").count(), 1, "{probe:?}: {out}");
        assert!(i.queue_files().is_empty(), "{probe:?}: {log}");
    }
}

/// AUTH on a pipe (the local machine) in submission mode, then relaying;
/// the sender must be the user's own.
#[test]
fn submission_relays_after_auth_as_the_users_own_sender() {
    let i = Instance::new();
    i.init_spool();
    let input = std::fs::read(data_dir().join("submission-auth.in")).unwrap();
    let (out, log) = session(&i, &["--submission"], &input);
    assert!(out.contains("235 2.7.0"), "{out}");
    assert!(
        out.contains("553 5.7.1 <bob@mail.test>: Sender address rejected"),
        "{out}"
    );
    assert!(out.contains("queued as"), "{out}");
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=ann"),
        "{log}"
    );
    let q = std::fs::read(i.path("spool/incoming").join(&i.queue_files()[0])).unwrap();
    let q = text(&q);
    assert!(
        q.contains("\nTx@elsewhere.example\n") && q.contains("\nTcarl@mail.test\n"),
        "{q}"
    );
    assert!(q.contains("with ESMTPA id"), "{q}");
}

/// A failed login is logged once in the fail2ban shape, delayed, and the
/// connection ends after [auth] max_failures.
#[test]
fn failed_logins_are_logged_delayed_and_limited() {
    let i = Instance::new();
    let bad = "AUTH PLAIN AGFubgB3cm9uZw==\r\n"; // ann / wrong
    let input = format!("EHLO c.example\r\n{bad}{bad}{bad}{bad}QUIT\r\n");
    let start = std::time::Instant::now();
    let (out, log) = session(&i, &["--submission"], input.as_bytes());
    assert_eq!(
        out.matches("535 5.7.8 Error: authentication failed")
            .count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("421 4.7.0 mail.test Error: too many failed logins"),
        "{out}"
    );
    assert!(!out.contains("221"), "{out}");
    assert_eq!(
        log.matches("auth failed: method=PLAIN, user=<ann>, client=local")
            .count(),
        3,
        "{log}"
    );
    // 1 s + 2 s + 4 s of delays: a bound for correctness, not a timing.
    assert!(start.elapsed() >= Duration::from_secs(7));
}

/// The limits: recipients per message and the message size.
#[test]
fn recipient_and_size_limits() {
    let mut i = Instance::new();
    i.write_config("message_size_limit = 2000\n[smtpd]\nmax_recipients = 2\n");
    i.init_spool();
    let big = "x".repeat(100) + "\r\n";
    let input = format!(
        "EHLO c.example\r\nMAIL FROM:<b@r.example> SIZE=5000\r\nMAIL FROM:<b@r.example>\r\nRCPT TO:<ann@mail.test>\r\nRCPT TO:<bob@mail.test>\r\nRCPT TO:<carl@mail.test>\r\nDATA\r\n{}.\r\nQUIT\r\n",
        big.repeat(30)
    );
    let (out, _) = session(&i, &[], input.as_bytes());
    assert!(out.contains("250-SIZE 2000\r\n"), "{out}");
    assert!(
        out.contains("552 5.3.4 Message size exceeds fixed limit"),
        "{out}"
    );
    assert!(
        out.contains("452 4.5.3 Error: too many recipients"),
        "{out}"
    );
    assert!(
        out.contains("552 5.3.4 Error: message file too big"),
        "{out}"
    );
    assert!(i.queue_files().is_empty());
}

/// A spool that cannot be written is a temporary failure, never a 5xx.
#[test]
fn a_broken_queue_is_a_temporary_failure() {
    let i = Instance::new();
    // No spool at all.
    let input =
        "EHLO c.example\r\nMAIL FROM:<b@r.example>\r\nRCPT TO:<ann@mail.test>\r\nDATA\r\nQUIT\r\n";
    let (out, log) = session(&i, &[], input.as_bytes());
    assert!(
        out.contains("451 4.3.0 Error: queue file write error"),
        "{out}"
    );
    assert!(log.contains("queue:"), "{log}");
}

/// An unreadable config: 421 to the client and exit 78.
#[test]
fn bad_config_says_421_and_exits_78() {
    let i = Instance::new();
    i.write("posthorn.toml", "bogus = 1\n");
    let out = i.run("smtpd", &[], b"EHLO x\r\n");
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stdout),
        "421 4.3.0 Error: server unavailable, try again later\r\n"
    );
}

/// `sendmail -bs`: the same session on stdin/stdout as the calling user,
/// who may send anywhere, as with sendmail itself.
#[test]
fn sendmail_bs_runs_a_local_session() {
    let i = Instance::new();
    i.init_spool();
    let input = "EHLO localhost\r\nMAIL FROM:<me@mail.test>\r\nRCPT TO:<ann@mail.test>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n";
    let out = i.sendmail(&["-bs"], input.as_bytes());
    let o = text(&out.stdout);
    assert!(out.status.success(), "{o}{}", text(&out.stderr));
    assert_eq!(o.matches("250 2.1.5 Ok").count(), 2, "{o}");
    assert!(o.contains("queued as"), "{o}");
    i.qrun_once();
    let m = i.maildir("ann");
    assert_eq!(m.len(), 1);
    // Two trace fields, as Postfix writes for `sendmail -bs` by a user:
    // enqueue's for the local submission, then the SMTP session's.
    let rcvd = headers(&m[0], "Received");
    assert_eq!(rcvd.len(), 2, "{rcvd:?}");
    assert!(rcvd[0].contains("(Posthorn, from userid "), "{rcvd:?}");
    assert!(rcvd[1].starts_with("from localhost (uid "), "{rcvd:?}");
}

/// kill -9 at random moments while the message streams in: whenever the
/// client got 250, the message is in the spool; when it did not, there is
/// at most one message there (committed just before the kill) and never
/// a half one.
#[test]
fn kill_9_during_data_never_loses_an_acknowledged_message() {
    let i = Instance::new();
    i.init_spool();
    let mut acked = 0;
    for round in 0..12u64 {
        let before = i.queue_files().len();
        let mut c = i.cmd("smtpd");
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let body = format!(
            "Subject: k{round}\r\n\r\n{}",
            "line of text\r\n".repeat(2000)
        );
        let head =
            "EHLO c.example\r\nMAIL FROM:<b@r.example>\r\nRCPT TO:<ann@mail.test>\r\nDATA\r\n";
        // A third of the rounds wait for the reply to the dot, a third
        // kill right after sending it (racing the commit), a third kill
        // somewhere inside the data.
        let cut = match round % 3 {
            0 | 1 => body.len(),
            _ => (round as usize * 2311) % body.len(),
        };
        let mut got = String::new();
        let _ = stdin.write_all(head.as_bytes());
        let _ = stdin.write_all(&body.as_bytes()[..cut]);
        if cut == body.len() {
            let _ = stdin.write_all(b".\r\n");
        }
        if round % 3 == 0 {
            // Wait for the reply to the dot (or the end).
            loop {
                let mut l = String::new();
                if out.read_line(&mut l).unwrap_or(0) == 0 {
                    break;
                }
                got.push_str(&l);
                if l.starts_with("250 2.0.0") || l.starts_with('4') || l.starts_with('5') {
                    break;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        got.push_str(&rest);
        let after = i.queue_files().len();
        if got.contains("queued as") {
            acked += 1;
            assert_eq!(
                after,
                before + 1,
                "round {round}: acknowledged but not queued"
            );
        } else {
            assert!(after <= before + 1, "round {round}");
        }
        // Whatever is queued is whole: qrun delivers it, with its body.
    }
    assert!(acked > 0, "no round reached the end of the data");
    i.qrun_once();
    for m in i.maildir("ann") {
        assert_eq!(text(&body(&m)).matches("line of text").count(), 2000);
    }
}

/// tls_instance - a certificate in [tls] and the submission password.
fn tls_instance() -> Option<Instance> {
    let mut i = Instance::new();
    i.init_spool();
    if !make_cert(&i) {
        return None;
    }
    i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    Some(i)
}

/// Plaintext pipelined behind STARTTLS is never executed: the connection
/// is dropped (CVE-2011-0411).
#[test]
fn plaintext_after_starttls_is_not_executed() {
    let Some(i) = tls_instance() else {
        return;
    };
    let input =
        "EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<b@r.example>\r\nRCPT TO:<ann@mail.test>\r\n";
    let (out, log) = session(&i, &[], input.as_bytes());
    assert!(out.contains("250 STARTTLS\r\n"), "{out}");
    assert!(!out.contains("220 2.0.0"), "{out}");
    assert!(!out.contains("2.1.0"), "{out}");
    assert!(log.contains("plaintext pipelined after STARTTLS"), "{log}");
}

/// Real clients over real sockets: smtplib with STARTTLS and AUTH in
/// submission mode, and smtplib over implicit TLS; AUTH is refused before
/// TLS from a non-loopback-looking client only, which a loopback test
/// cannot be, so here it is offered after STARTTLS and checked there.
#[test]
fn python_smtplib_starttls_auth_and_implicit_tls() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "smtpd", &["--submission"]) else {
        return;
    };
    let got = python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.example")
assert s.has_extn("starttls"), s.esmtp_features
s.starttls(context=ctx)
s.ehlo("client.example")
assert not s.has_extn("starttls")
print(s.sock.version())
s.login("ann", "x")
r = s.sendmail("ann@mail.test", ["carl@mail.test", "far@elsewhere.example"],
               b"Subject: via smtplib\r\n\r\nhello over TLS\r\n")
print("refused", r)
s.quit()
"#,
        &[&l.port.to_string(), &i.path("cert.pem").to_string_lossy()],
    );
    assert!(got.starts_with("TLSv1."), "{got}");
    assert!(got.contains("refused {}"), "{got}");
    let q = i.queue_files();
    assert_eq!(q.len(), 1);
    let qf = text(&std::fs::read(i.path("spool/incoming").join(&q[0])).unwrap());
    assert!(
        qf.contains("with ESMTPSA id") && qf.contains("(using TLSv1."),
        "{qf}"
    );
    drop(l);

    let Some(l) = Launcher::start(&i, "smtpd", &["--submission", "--tls"]) else {
        return;
    };
    let got = python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), timeout=20, context=ctx)
code, banner = s.ehlo("client.example")
print(code, s.has_extn("starttls"), s.has_extn("auth"))
try:
    s.login("ann", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("refused", e.smtp_code)
s.quit()
"#,
        &[&l.port.to_string(), &i.path("cert.pem").to_string_lossy()],
    );
    assert_eq!(got, "250 False True\nrefused 535\n");
}

/// openssl s_client completes STARTTLS on the MX port.
#[test]
fn openssl_s_client_starttls_smtp() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "smtpd", &[]) else {
        return;
    };
    // One command at a time: EHLO is a point where a client must wait.
    let o = s_client(
        l.port,
        "smtp",
        &[("EHLO c.example", "250 "), ("QUIT", "221")],
    );
    assert!(
        o.contains("250-mail.test") && o.contains("221 2.0.0 Bye"),
        "{o}"
    );
    assert!(!o.contains("STARTTLS"), "offered again under TLS: {o}");
}

/// RFC 2920: an unauthenticated network client that sends ahead of EHLO's
/// reply is cut off, as Postfix's smtpd_forbid_unauth_pipelining does;
/// one that waits where it must may pipeline MAIL, RCPT and DATA.
#[test]
fn pipelining_past_a_sync_point_is_refused() {
    let i = Instance::new();
    i.init_spool();
    let Some(l) = Launcher::start(&i, "smtpd", &[]) else {
        return;
    };
    let talk = |script: &[&str]| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", l.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut all = String::new();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        all.push_str(&line);
        for chunk in script {
            s.write_all(chunk.as_bytes()).unwrap();
            // Read replies until the last one of this chunk's commands.
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return all;
                }
                all.push_str(&line);
                if line.as_bytes().get(3) == Some(&b' ') && !line.starts_with("250 2.1") {
                    break;
                }
            }
        }
        all
    };
    let bad = talk(&["EHLO c.example\r\nMAIL FROM:<b@r.example>\r\n"]);
    assert!(
        bad.contains("554 5.5.0 Error: SMTP protocol synchronization"),
        "{bad}"
    );
    let good = talk(&[
        "EHLO c.example\r\n",
        "MAIL FROM:<b@r.example>\r\nRCPT TO:<ann@mail.test>\r\nDATA\r\n",
        "Subject: p\r\n\r\nx\r\n.\r\n",
        "QUIT\r\n",
    ]);
    assert!(
        good.contains("queued as") && good.contains("221 2.0.0"),
        "{good}"
    );
    let done = "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5";
    let log_has =
        |t: &str| std::fs::read_to_string(i.path("launcher.log")).is_ok_and(|l| l.contains(t));
    // smtpd logs the disconnect just after its last reply: wait for it.
    assert!(wait_for(Duration::from_secs(10), || log_has(done)));
    let log = std::fs::read_to_string(i.path("launcher.log")).unwrap();
    assert!(
        log.contains("improper command pipelining after EHLO from unknown[127.0.0.1]"),
        "{log}"
    );
    assert!(log.contains("connect from unknown[127.0.0.1]"), "{log}");
    assert!(
        log.contains("disconnect from unknown[127.0.0.1] ehlo=0/1 commands=0/1"),
        "{log}"
    );
}

/// swaks, a real client, both through the launcher and with --pipe.
#[test]
fn swaks_sends_through_the_launcher_and_a_pipe() {
    if Command::new("swaks").arg("--version").output().is_err() {
        eprintln!("skipped: swaks is not installed");
        return;
    }
    let i = Instance::new();
    i.init_spool();
    let Some(l) = Launcher::start(&i, "smtpd", &[]) else {
        return;
    };
    let out = Command::new("swaks")
        .args([
            "--to",
            "ann@mail.test",
            "--from",
            "bob@remote.example",
            "--server",
        ])
        .arg(format!("127.0.0.1:{}", l.port))
        .args(["--header", "Subject: swaks socket", "--pipeline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    let pipe = format!(
        "{} -C {}",
        bin_dir().join("smtpd").display(),
        i.config.display()
    );
    i.cmd("smtpd");
    let mut c = Command::new("swaks");
    c.args([
        "--to",
        "bob@mail.test",
        "--from",
        "ann@mail.test",
        "--pipe",
        &pipe,
    ])
    .args(["--header", "Subject: swaks pipe"]);
    if let Some((u, g)) = run_ids() {
        use std::os::unix::process::CommandExt;
        c.uid(u).gid(g);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = Command::new("swaks")
        .args([
            "--to",
            "victim@elsewhere.example",
            "--from",
            "x@y.example",
            "--server",
        ])
        .arg(format!("127.0.0.1:{}", l.port))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("554 5.7.1"),
        "{}",
        text(&out.stdout)
    );
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 1);
    assert_eq!(i.maildir("bob").len(), 1);
    assert_eq!(
        header(&i.maildir("ann")[0], "Subject").as_deref(),
        Some("swaks socket")
    );
}

/// --local trusts its caller as sendmail does, so it refuses to serve a
/// network client (an inetd line pointing at it would be an open relay).
#[test]
fn local_mode_refuses_network_clients() {
    let i = Instance::new();
    i.init_spool();
    let Some(l) = Launcher::start(&i, "smtpd", &["--local"]) else {
        return;
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", l.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<v@elsewhere.example>\r\n");
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert_eq!(
        got,
        "421 4.3.0 Error: server unavailable, try again later\r\n"
    );
}

/// uids - real, effective, saved and filesystem uid of a process.
fn uids(pid: u32) -> String {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A session held open over pipes, a reply line at a time.
struct Held {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Held {
    fn start(mut c: Command) -> Held {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut h = Held { child, out };
        assert!(h.reply().starts_with("220 "));
        h
    }
    /// say - one command; its whole (possibly multi-line) reply.
    fn say(&mut self, cmd: &str) -> String {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if self.out.read_line(&mut l).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
}

/// As root (CI): smtpd becomes the `user` account before the client says
/// anything and keeps no way back to root, yet still reads the root-only
/// users file and /etc/shadow it opened first: a virtual user and a system
/// account made with useradd and chpasswd (yescrypt) both log in.
#[test]
fn as_root_smtpd_drops_root_for_good_and_still_checks_passwords() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let i = Instance::new();
    i.init_spool();
    let name = format!("phsmtp{}", std::process::id() % 100000);
    let st = Command::new("useradd")
        .args(["-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", &name])
        .status()
        .unwrap();
    assert!(st.success());
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("userdel").arg(&self.0).status();
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
        .write_all(format!("{name}:sys-secret\n").as_bytes())
        .unwrap();
    assert!(ch.wait().unwrap().success());
    i.write(
        "posthorn.toml",
        &format!(
            "hostname = \"{HOST}\"\nspool = \"spool\"\nusers = \"users\"\nsystem_users = true\naliases = \"aliases\"\nlog = \"stderr\"\nlibexec = \"{}\"\nuser = \"nobody\"\n",
            bin_dir().display()
        ),
    );
    let mut c = i.cmd_root("smtpd");
    c.arg("--submission");
    // cmd_root handed the instance to nobody: the users file goes back to
    // root, readable by root alone.
    std::os::unix::fs::chown(i.path("users"), Some(0), Some(0)).unwrap();
    chmod(&i.path("users"), 0o600);
    let mut s = Held::start(c);
    let pid = s.child.id();
    assert_eq!(uids(pid), "65534 65534 65534 65534");
    assert!(s.say("EHLO c.example").contains("AUTH PLAIN LOGIN"));
    let plain = |u: &str, p: &str| {
        use std::fmt::Write as _;
        let raw = format!("\0{u}\0{p}");
        // base64 by hand: the test crate has no base64 dependency.
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = raw.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        let mut line = String::new();
        write!(line, "AUTH PLAIN {out}").unwrap();
        line
    };
    assert!(
        s.say(&plain(&name, "sys-secret")).starts_with("235 "),
        "system account"
    );
    assert!(s.say("RCPT TO:<ann@mail.test>").starts_with("503"));
    assert!(s.say("MAIL FROM:<>").starts_with("250"));
    assert!(
        s.say("RCPT TO:<ann@mail.test>").starts_with("250"),
        "users file read after the drop"
    );
    assert!(s.say("RCPT TO:<nobody-here@mail.test>").starts_with("550"));
    assert_eq!(uids(pid), "65534 65534 65534 65534");
    s.say("QUIT");
    s.child.wait().unwrap();
    // And a virtual user from the root-only users file.
    let mut c = i.cmd_root("smtpd");
    c.arg("--submission");
    std::os::unix::fs::chown(i.path("users"), Some(0), Some(0)).unwrap();
    let mut s = Held::start(c);
    s.say("EHLO c.example");
    assert!(s.say(&plain("ann", "x")).starts_with("235 "));
    assert!(s.say(&plain("ann", "x")).starts_with("503"));
    s.say("QUIT");
    s.child.wait().unwrap();
}

/// AUTH is refused before TLS for a client that is not on loopback, with
/// 538 and without AUTH in EHLO, unless [auth] allow_plaintext says so.
#[test]
fn no_plaintext_auth_from_the_network_without_tls() {
    let Some(mut i) = tls_instance() else {
        return;
    };
    let session = |i: &Instance| {
        let mut c = i.cmd("smtpd");
        c.arg("--submission").env("TCPREMOTEIP", "192.0.2.7");
        let mut s = Held::start(c);
        let ehlo = s.say("EHLO c.example");
        let auth = s.say("AUTH PLAIN AGFubgB4");
        s.say("QUIT");
        s.child.wait().unwrap();
        (ehlo, auth)
    };
    let (ehlo, auth) = session(&i);
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(auth.starts_with("538 5.7.11"), "{auth}");
    i.write_config(
        "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[auth]\nallow_plaintext = true\n",
    );
    let (ehlo, auth) = session(&i);
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(auth.starts_with("235 "), "{auth}");
}

/// Postfix's smtp-source, 20 sessions at once, 200 messages of 4 KiB
/// through the launcher: every one acknowledged is delivered, whole.
#[test]
fn smtp_source_twenty_sessions_into_a_maildir() {
    if !Path::new("/usr/sbin/smtp-source").exists() {
        eprintln!("skipped: smtp-source (Debian's postfix package) is not installed");
        return;
    }
    let i = Instance::new();
    i.init_spool();
    let Some(l) = Launcher::start(&i, "smtpd", &[]) else {
        return;
    };
    let out = Command::new("/usr/sbin/smtp-source")
        .args([
            "-s",
            "20",
            "-m",
            "200",
            "-l",
            "4096",
            "-f",
            "bob@remote.example",
        ])
        .args(["-t", "ann@mail.test", "-M", "mail.test"])
        .arg(format!("127.0.0.1:{}", l.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(i.queue_files().len(), 200);
    i.qrun_once();
    let msgs = i.maildir("ann");
    assert_eq!(msgs.len(), 200);
    for m in &msgs {
        assert!(body(m).len() >= 4000, "{}", text(m));
        let r = header(m, "Received").unwrap();
        assert!(r.contains("by mail.test (Posthorn) with SMTP id"), "{r}");
    }
}

/// A big message streams through: smtpd's memory stays at a few buffers
/// (checked at the 250, from /proc), and the queue holds every octet.
#[test]
fn a_big_message_is_streamed_not_held() {
    let mut i = Instance::new();
    i.write_config("message_size_limit = 100000000\n");
    i.init_spool();
    let mut s = Held::start(i.cmd("smtpd"));
    let pid = s.child.id();
    s.say("EHLO c.example");
    s.say("MAIL FROM:<b@r.example>");
    s.say("RCPT TO:<ann@mail.test>");
    assert!(s.say("DATA").starts_with("354"));
    let line = format!("{}\r\n", "z".repeat(78));
    let chunk = line.repeat(1000);
    let mut w = s.child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(b"Subject: big\r\n\r\n").unwrap();
        for _ in 0..400 {
            w.write_all(chunk.as_bytes()).unwrap();
        }
        w.write_all(b".\r\n").unwrap();
        w
    });
    let reply = s.reply();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm: u64 = st
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    assert!(hwm < 16 * 1024, "peak RSS {hwm} kB for a 32 MB message");
    drop(writer.join().unwrap());
    s.child.wait().unwrap();
    let q = i.queue_files();
    let size = std::fs::metadata(i.path("spool/incoming").join(&q[0]))
        .unwrap()
        .len();
    // 400,000 lines of 79 octets once CRLF is LF, plus header and Received.
    assert!(size > 400_000 * 79, "{size}");
}

/// A broken certificate is a clear error in the log, 421 to the client
/// and exit 78: never a panic, never a session without the TLS promised.
#[test]
fn a_broken_certificate_is_a_clear_startup_error() {
    let mut i = Instance::new();
    if !make_cert(&i) {
        return;
    }
    i.write(
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let out = i.run("smtpd", &[], b"EHLO x\r\nQUIT\r\n");
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "421 4.3.0 Error: server unavailable, try again later\r\n"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("cert.pem") && !err.contains("panicked"),
        "{err}"
    );
}
