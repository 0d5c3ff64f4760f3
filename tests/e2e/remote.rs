//! Remote delivery: qrun and its `remote` helper against scripted SMTP
//! sinks (Python aiosmtpd, tests/data/remote/sink.py) and a loopback DNS
//! server (dnsmasq). Outcomes are checked where a user would look: the
//! sink's received mail, mailq, the log, and the DSN in the sender's Maildir.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// have - whether a program or Python module the test needs is here.
fn have_aiosmtpd() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: python3 -m pip install aiosmtpd (CI installs it in .ci/run)");
    }
    ok
}

/// dsn_parts - the DSN's per-recipient fields, parsed by Python's email
/// package: one line per recipient, "Final-Recipient|Status|Remote-MTA|Diagnostic-Code".
fn dsn_parts(msg: &[u8]) -> String {
    let code = r#"
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.compat32)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
ds = [p for p in m.walk() if p.get_content_type() == 'message/delivery-status'][0]
blocks = ds.get_payload()
for b in blocks[1:]:
    print('|'.join(str(b.get(h, '')).replace('\n', ' ') for h in ['Final-Recipient', 'Status', 'Remote-MTA', 'Diagnostic-Code', 'Action']))
"#;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), msg).unwrap();
    python(code, &[f.path().to_str().unwrap()])
}

/// log_lines - the lines of qrun's log (stderr) that mention `to=<addr>`.
fn log_of(out: &std::process::Output, addr: &str) -> String {
    text(&out.stderr)
        .lines()
        .filter(|l| l.contains(&format!("to=<{addr}>")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn per_recipient_outcomes_by_mx_and_one_dsn_with_remote_replies() {
    if !have_aiosmtpd() {
        return;
    }
    let Some(dns) = Dns::start(&[
        "--mx-host=mx.test,mx1.mx.test,10".into(),
        "--host-record=mx1.mx.test,127.0.0.1".into(),
    ]) else {
        return;
    };
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "resolver = \"127.0.0.1:{}\"\nremote_port = {}\n[smtp]\nreply_timeout = \"10s\"\n",
        dns.port, sink.port
    ));
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "ok1@mx.test",
            "temp1@mx.test",
            "perm1@mx.test",
            "perm2@mx.test",
            "ok2@mx.test",
        ],
        b"Subject: per recipient\n\n.leading dot\nline two\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = i.qrun_once();

    // One transaction carried both accepted recipients.
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains(r#""rcpts": ["ok1@mx.test", "ok2@mx.test"]"#),
        "{}",
        got[0]
    );
    assert!(got[0].contains(r#""from": "ann@mail.test""#));
    assert!(
        got[0].contains(r"\r\n.leading dot\r\nline two\r\n"),
        "{}",
        got[0]
    );

    // Postfix's log shape, per recipient.
    let ok = log_of(&out, "ok1@mx.test");
    let want = format!("relay=mx1.mx.test[127.0.0.1]:{}, delay=", sink.port);
    assert!(ok.contains(&want) && ok.contains(", delays="), "{ok}");
    assert!(
        ok.contains("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as S1)"),
        "{ok}"
    );
    let perm = log_of(&out, "perm1@mx.test");
    assert!(
        perm.contains("dsn=5.1.1, status=bounced (host mx1.mx.test[127.0.0.1] said: 550 5.1.1 <perm1@mx.test>: Recipient address rejected: User unknown (in reply to RCPT TO command))"),
        "{perm}"
    );
    assert!(log_of(&out, "temp1@mx.test").contains("dsn=4.2.0, status=deferred"));

    // mailq: the deferred recipient with its last reason; the others are gone.
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    assert!(q.contains("temp1@mx.test"), "{q}");
    assert!(
        q.contains("said: 450 4.2.0 <temp1@mx.test>: Recipient address rejected: mailbox busy"),
        "{q}"
    );
    assert!(
        !q.contains("ok1@mx.test") && !q.contains("perm1@mx.test"),
        "{q}"
    );

    // One DSN to the sender, listing both failures with the remote replies.
    let mail = i.maildir("ann");
    assert_eq!(mail.len(), 1, "one bounce");
    let parts = dsn_parts(&mail[0]);
    let lines: Vec<&str> = parts.lines().collect();
    assert_eq!(lines.len(), 2, "{parts}");
    assert_eq!(
        lines[0],
        "rfc822; perm1@mx.test|5.1.1|dns; mx1.mx.test|smtp; 550 5.1.1 <perm1@mx.test>: Recipient address rejected: User unknown|failed"
    );
    assert!(lines[1].starts_with("rfc822; perm2@mx.test|5.1.1|dns; mx1.mx.test|smtp; 550"));

    // The retry sends to the deferred recipient only, and finds it still busy.
    std::thread::sleep(Duration::from_millis(1100));
    i.qrun_once();
    assert_eq!(
        sink.received().len(),
        1,
        "accepted recipients are not sent again"
    );
    assert_eq!(i.queue_files().len(), 1);
    assert_eq!(
        i.maildir("ann").len(),
        1,
        "no second bounce for the same failures"
    );
}

#[test]
fn dns_outcomes_nxdomain_null_mx_and_address_fallback() {
    if !have_aiosmtpd() {
        return;
    }
    let Some(dns) = Dns::start(&[
        // No MX: the domain's own address is the mail host.
        "--host-record=amx.test,127.0.0.1".into(),
        // RFC 7505 null MX: preference 0, exchange ".".
        "--dns-rr=null.test,15,000000".into(),
    ]) else {
        return;
    };
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "resolver = \"127.0.0.1:{}\"\nremote_port = {}\n",
        dns.port, sink.port
    ));
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "ok@amx.test",
            "x@nx.test",
            "y@null.test",
        ],
        b"Subject: dns\n\nbody\n",
    );
    assert!(out.status.success());
    let out = i.qrun_once();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains(r#""rcpts": ["ok@amx.test"]"#), "{}", got[0]);
    assert!(
        log_of(&out, "x@nx.test")
            .contains("dsn=5.1.2, status=bounced (Host or domain name not found")
    );
    assert!(
        log_of(&out, "y@null.test").contains(
            "dsn=5.1.10, status=bounced (Domain null.test does not accept mail (nullMX))"
        )
    );
    assert!(i.queue_files().is_empty(), "nothing left to retry");
    let mail = i.maildir("ann");
    assert_eq!(mail.len(), 1);
    let parts = dsn_parts(&mail[0]);
    assert!(
        parts.contains("rfc822; x@nx.test|5.1.2||X-Posthorn; Host or domain name not found"),
        "{parts}"
    );
    assert!(parts.contains("rfc822; y@null.test|5.1.10|"), "{parts}");
}

#[test]
fn lost_connection_refused_and_dead_dns_are_deferred() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    let closed = free_port();
    i.write_config(&format!(
        "resolver = \"127.0.0.1:9\"\n[transport]\n\"drop.test\" = \"[127.0.0.1]:{}\"\n\"closed.test\" = \"[127.0.0.1]:{closed}\"\n",
        sink.port
    ));
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "drop@drop.test",
            "a@closed.test",
            "b@nodns.example",
        ],
        b"Subject: deferred\n\nbody\n",
    );
    assert!(out.status.success());
    let out = i.qrun_once();
    assert!(
        log_of(&out, "drop@drop.test").contains("status=deferred (lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- message may be sent more than once)"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log_of(&out, "a@closed.test")
            .contains(&format!("relay=127.0.0.1[127.0.0.1]:{closed}, delay="))
    );
    assert!(
        log_of(&out, "a@closed.test")
            .contains("dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:")
    );
    assert!(
        log_of(&out, "b@nodns.example")
            .contains("dsn=4.4.3, status=deferred (Host or domain name not found")
    );
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    for a in ["drop@drop.test", "a@closed.test", "b@nodns.example"] {
        assert!(q.contains(a), "{q}");
    }
    assert!(
        i.maildir("ann").is_empty(),
        "temporary failures never bounce"
    );
}

#[test]
fn pipelining_and_dsn_parameters_to_postfix_smtp_sink() {
    let Some(bin) = ["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIP: Postfix's smtp-sink is not installed (apt-get install postfix)");
        return;
    };
    let mut i = Instance::new();
    let dump = i.path("dump");
    std::fs::create_dir_all(&dump).unwrap();
    chmod(&dump, 0o777);
    let port = free_port();
    let mut c = Command::new(bin);
    if is_root() {
        c.args(["-u", "nobody"]);
    }
    let mut sink = c
        .arg("-d")
        .arg(format!("{}/%M%S.", dump.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    i.write_config(&format!(
        "[transport]\n\"dsn.test\" = \"[127.0.0.1]:{port}\"\n"
    ));
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "env-1",
            "a@dsn.test",
            "b@dsn.test",
        ],
        b"Subject: dsn\n\nbody\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = i.qrun_once();
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(
        log_of(&out, "a@dsn.test").contains("status=sent (250 2.0.0 Ok"),
        "{}",
        text(&out.stderr)
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&dump)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "one transaction for both recipients");
    let d = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        d.contains("X-Mail-Args: <ann@mail.test> RET=HDRS ENVID=env-1"),
        "{d}"
    );
    assert!(
        d.contains("X-Rcpt-Args: <a@dsn.test> NOTIFY=SUCCESS,FAILURE"),
        "{d}"
    );
    assert!(
        d.contains("X-Rcpt-Args: <b@dsn.test> NOTIFY=SUCCESS,FAILURE"),
        "{d}"
    );
    // The next server took over NOTIFY=SUCCESS: no report from here.
    assert!(i.maildir("ann").is_empty());
    assert!(i.queue_files().is_empty());
}

/// start_smtp_sink - Postfix's smtp-sink on a free port with `opts`, or
/// None (with a note) where it is not installed.
fn start_smtp_sink(opts: &[&str]) -> Option<(Child, u16)> {
    let bin = ["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(bin) = bin else {
        eprintln!("SKIP: Postfix's smtp-sink is not installed (apt-get install postfix)");
        return None;
    };
    let port = free_port();
    let mut c = Command::new(bin);
    if is_root() {
        c.args(["-u", "nobody"]);
    }
    let child = c
        .args(opts)
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Some((child, port))
}

/// What a server does not offer: no ESMTP (HELO), no 8BITMIME (8-bit mail
/// deferred, 7-bit sent), a SIZE smaller than the message (bounced).
#[test]
fn helo_only_no_8bitmime_and_size_limits() {
    if !have_aiosmtpd() {
        return;
    }
    let Some((mut helo, helo_port)) = start_smtp_sink(&["-e"]) else {
        return;
    };
    let mut i = Instance::new();
    let small = Sink::start(&i.path("small"), &["--size", "500"]);
    i.write_config(&format!(
        "[transport]\n\"helo.test\" = \"[127.0.0.1]:{helo_port}\"\n\"small.test\" = \"[127.0.0.1]:{}\"\n",
        small.port
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "a@helo.test"],
        b"Subject: ascii\n\nplain\n",
    );
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "b@helo.test"],
        "Subject: eight\n\nna\u{ef}ve\n".as_bytes(),
    );
    let big = format!("Subject: big\n\n{}\n", "x".repeat(2000));
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "c@small.test"],
        big.as_bytes(),
    );
    let out = i.qrun_once();
    let _ = helo.kill();
    let _ = helo.wait();
    assert!(
        log_of(&out, "a@helo.test").contains("status=sent (250"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log_of(&out, "b@helo.test").contains("dsn=4.6.3, status=deferred (the message has 8-bit content, but host 127.0.0.1[127.0.0.1] does not offer 8BITMIME (not converted))"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log_of(&out, "c@small.test").contains("dsn=5.3.4, status=bounced (message size "),
        "{}",
        text(&out.stderr)
    );
    assert!(small.received().is_empty());
    let mail = i.maildir("ann");
    assert_eq!(mail.len(), 1, "the size bounce");
    assert!(dsn_parts(&mail[0]).starts_with("rfc822; c@small.test|5.3.4|dns; 127.0.0.1|"));
}

#[test]
fn a_server_that_stalls_past_the_reply_timeout_defers() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &["--slow", "4"]);
    i.write_config(&format!(
        "[smtp]\nreply_timeout = \"1s\"\n[transport]\n\"stall.test\" = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "stall@stall.test"],
        b"Subject: s\n\nx\n",
    );
    let out = i.qrun_once();
    let l = log_of(&out, "stall@stall.test");
    assert!(
        l.contains("dsn=4.4.2, status=deferred (conversation with 127.0.0.1[127.0.0.1] timed out while sending RCPT TO)"),
        "{l}"
    );
    assert_eq!(i.queue_files().len(), 1);
}

/// Six messages to one destination with four workers: remote sessions
/// are kept between messages, so fewer connections than messages, and
/// each connection carries whole transactions.
#[test]
fn connections_are_reused_for_the_next_message() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "[transport]\n\"reuse.test\" = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    i.init_spool();
    for n in 0..6 {
        let m = format!("Subject: {n}\n\nx\n");
        i.sendmail(
            &["-i", "-f", "ann@mail.test", &format!("r{n}@reuse.test")],
            m.as_bytes(),
        );
    }
    let out = i.qrun_once();
    let got = sink.received();
    assert_eq!(got.len(), 6, "{}", text(&out.stderr));
    let mut peers: Vec<String> = got
        .iter()
        .map(|j| {
            let p = j.split("\"peer\": ").nth(1).unwrap();
            p[..p.find(',').unwrap()].to_string()
        })
        .collect();
    peers.sort();
    peers.dedup();
    assert!(
        peers.len() <= 4,
        "at most one connection per worker: {peers:?}"
    );
    assert!(i.queue_files().is_empty());
}

/// A host with an IPv4 address where nothing listens and an IPv6 one
/// where the server is: IPv4 is tried first, then IPv6 delivers.
#[test]
fn ipv4_first_then_ipv6() {
    if !have_aiosmtpd() {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback here");
        return;
    }
    let Some(dns) = Dns::start(&[
        "--mx-host=six.test,mx.six.test,10".into(),
        "--host-record=mx.six.test,127.0.0.2,::1".into(),
    ]) else {
        return;
    };
    let mut i = Instance::new();
    let port = free_port();
    let sink = Sink::start_on(&i.path("sink"), &[], port, "::1");
    i.write_config(&format!(
        "resolver = \"127.0.0.1:{}\"\nremote_port = {port}\n",
        dns.port
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "v6@six.test"],
        b"Subject: six\n\nx\n",
    );
    let out = i.qrun_once();
    assert_eq!(sink.received().len(), 1, "{}", text(&out.stderr));
    let l = log_of(&out, "v6@six.test");
    assert!(l.contains(&format!("relay=mx.six.test[::1]:{port}")), "{l}");
    assert!(
        text(&out.stderr).contains(&format!(
            "connect to mx.six.test[127.0.0.2]:{port}: Connection refused"
        )),
        "{}",
        text(&out.stderr)
    );
}

/// make_ca - a CA and a server certificate for `name`, made with openssl.
fn make_ca(dir: &Path, name: &str) {
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=TestCA -keyout ca.key -out ca.pem 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={name} -keyout srv.key -out srv.csr 2>/dev/null; \
         printf 'subjectAltName=DNS:{name}\\n' > ext; \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem 2>/dev/null",
        d = dir.display()
    );
    let st = Command::new("sh").arg("-c").arg(sh).status().unwrap();
    assert!(st.success(), "openssl failed");
}

#[test]
fn relayhost_with_starttls_verified_and_auth() {
    if !have_aiosmtpd() {
        return;
    }
    let Some(dns) = Dns::start(&["--host-record=relay.test,127.0.0.1".into()]) else {
        return;
    };
    let mut i = Instance::new();
    let certs = i.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "relay.test");
    let sink = Sink::start(
        &i.path("sink"),
        &[
            "--tls",
            certs.join("srv.pem").to_str().unwrap(),
            certs.join("srv.key").to_str().unwrap(),
            "--auth",
            "ann",
            "s3cret",
        ],
    );
    i.write("relay-password", "s3cret\n");
    i.write_config(&format!(
        "relayhost = \"[relay.test]:{}\"\nresolver = \"127.0.0.1:{}\"\n[relay]\nuser = \"ann\"\npassword_file = \"relay-password\"\n[smtp]\nca_file = \"certs/ca.pem\"\n",
        sink.port, dns.port
    ));
    i.init_spool();
    let out = i.sendmail(
        &["-i", "-f", "ann@mail.test", "someone@far.example"],
        "Subject: via relay\n\nnaïve 8-bit body\n".as_bytes(),
    );
    assert!(out.status.success());
    let out = i.qrun_once();
    let got = sink.received();
    assert_eq!(got.len(), 1, "{}", text(&out.stderr));
    assert!(got[0].contains(r#""tls": true"#), "{}", got[0]);
    assert!(got[0].contains(r#""auth": "ann""#), "{}", got[0]);
    assert!(got[0].contains("BODY=8BITMIME"), "{}", got[0]);
    assert!(
        log_of(&out, "someone@far.example")
            .contains(&format!("relay=relay.test[127.0.0.1]:{}", sink.port))
    );

    // Without the test CA the certificate is not trusted: deferred, never plaintext.
    i.write_config(&format!(
        "relayhost = \"[relay.test]:{}\"\nresolver = \"127.0.0.1:{}\"\n[relay]\nuser = \"ann\"\npassword_file = \"relay-password\"\n",
        sink.port, dns.port
    ));
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "other@far.example"],
        b"Subject: 2\n\nx\n",
    );
    let out = i.qrun_once();
    let l = log_of(&out, "other@far.example");
    assert!(
        l.contains(
            "dsn=4.7.5, status=deferred (STARTTLS handshake with relay.test[127.0.0.1] failed"
        ),
        "{l}"
    );
    assert_eq!(sink.received().len(), 1);
}

#[test]
fn kill_9_during_sending_resends_only_the_transaction_in_flight() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let fast = Sink::start(&i.path("fast"), &[]);
    let slow = Sink::start(&i.path("slow"), &["--slow", "3"]);
    i.write_config(&format!(
        "resolver = \"127.0.0.1:9\"\n[transport]\n\"d1.test\" = \"[127.0.0.1]:{}\"\n\"d2.test\" = \"[127.0.0.1]:{}\"\n",
        fast.port, slow.port
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "ok@d1.test", "slow@d2.test"],
        b"Subject: crash\n\nbody\n",
    );
    let mut c = i.cmd("qrun");
    c.arg("-o").stdout(Stdio::null()).stderr(Stdio::null());
    let mut q = c.spawn().unwrap();
    // Once d1's 250 is on record and d2's transaction is under way, kill qrun.
    let state_dir = i.path("spool/state");
    let recorded = wait_for(Duration::from_secs(20), || {
        std::fs::read_dir(&state_dir).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.lines().any(|l| l.starts_with("D\t0\t")))
            })
        })
    });
    assert!(recorded, "d1's delivery was not journaled");
    let _ = q.kill();
    let _ = q.wait();
    assert_eq!(fast.received().len(), 1);
    // The orphaned helper may still finish d2; either way it is resent below.
    std::thread::sleep(Duration::from_millis(3500));
    i.qrun_once();
    assert_eq!(
        fast.received().len(),
        1,
        "d1 got its 250 before the kill: not resent"
    );
    let n = slow.received().len();
    assert!(
        (1..=2).contains(&n),
        "d2 was in flight: delivered at least once ({n})"
    );
    assert!(i.queue_files().is_empty());
}

#[test]
fn hold_release_flush_by_id_and_domain_and_delete() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let closed = free_port();
    let routes = |one: u16| {
        format!(
            "[transport]\n\"one.test\" = \"[127.0.0.1]:{one}\"\n\"two.test\" = \"[127.0.0.1]:{closed}\"\n"
        )
    };
    i.write_config(&routes(closed));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "a@one.test"],
        b"Subject: 1\n\nx\n",
    );
    let id1 = i.queue_files().pop().unwrap();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "b@two.test"],
        b"Subject: 2\n\nx\n",
    );
    let id2 = i.queue_files().into_iter().find(|q| *q != id1).unwrap();
    i.qrun_once();
    assert_eq!(i.queue_files().len(), 2, "both deferred");

    // Held: listed with '!', not tried, its records kept.
    let out = i.run("qrun", &["--hold", &id1], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{id1}: held\n"));
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    assert!(q.contains(&format!("{id1}!")), "{q}");
    let out = i.qrun_once();
    assert!(!text(&out.stderr).contains(&id1), "{}", text(&out.stderr));
    assert!(
        i.path(&format!("spool/state/{id1}")).exists(),
        "records survive the sweep"
    );

    // Released, then sent by domain once its server is up; the other stays.
    let out = i.run("qrun", &["--release", &id1], b"");
    assert!(out.status.success());
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    assert!(q.contains(&id1) && !q.contains(&format!("{id1}!")), "{q}");
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&routes(sink.port));
    let out = i.sendmail(&["-qRone.test"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{id1}: done\n"));
    assert_eq!(sink.received().len(), 1);
    assert_eq!(i.queue_files(), vec![id2.clone()]);

    // One ID now: still deferred; then deleted, without a bounce.
    let out = i.run("qrun", &["-i", &id2], b"");
    assert!(
        text(&out.stdout).starts_with(&format!("{id2}: deferred, next try ")),
        "{}",
        text(&out.stdout)
    );
    let out = i.run("qrun", &["--delete", &id2], b"");
    assert!(out.status.success());
    assert!(i.queue_files().is_empty());
    assert!(!i.path(&format!("spool/state/{id2}")).exists());
    assert!(i.maildir("ann").is_empty());
    // Not a queue ID: usage, and nothing is touched.
    let out = i.run("qrun", &["--delete", "../x"], b"");
    assert_eq!(out.status.code(), Some(64));
}

/// Two Posthorn instances on loopback: A sends by SMTP to B's own smtpd,
/// by MX-style transport to port "25" (opportunistic STARTTLS), and as a
/// smarthost client to B's submission port (STARTTLS verified against a
/// test CA, AUTH as ann).
#[test]
fn posthorn_to_posthorn_by_transport_and_by_relayhost_with_auth() {
    let Some(dns) = Dns::start(&["--host-record=mail.test,127.0.0.1".into()]) else {
        return;
    };
    let mut b = Instance::new();
    b.init_spool();
    let certs = b.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "mail.test");
    b.write_config(
        "domains = [\"b.test\"]\n[tls]\ncert = \"certs/srv.pem\"\nkey = \"certs/srv.key\"\n",
    );
    let Some(mx) = Launcher::start(&b, "smtpd", &[]) else {
        return;
    };
    let Some(sub) = Launcher::start(&b, "smtpd", &["--submission"]) else {
        return;
    };
    let mut a = Instance::new();
    a.write("relay-password", "x\n");
    a.write_config(&format!(
        "relayhost = \"[mail.test]:{}\"\nresolver = \"127.0.0.1:{}\"\n[relay]\nuser = \"ann\"\npassword_file = \"relay-password\"\n[smtp]\nca_file = \"{}\"\n[transport]\n\"b.test\" = \"[127.0.0.1]:{}\"\n",
        sub.port,
        dns.port,
        certs.join("ca.pem").display(),
        mx.port
    ));
    a.init_spool();
    let out = a.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "bob@b.test",
            "far@elsewhere.example",
        ],
        b"Subject: across\n\nfrom A to B\n",
    );
    assert!(out.status.success());
    let out = a.qrun_once();
    assert!(
        log_of(&out, "bob@b.test").contains("status=sent (250 2.0.0 Ok: queued as "),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log_of(&out, "far@elsewhere.example").contains("status=sent (250 2.0.0 Ok: queued as "),
        "{}",
        text(&out.stderr)
    );
    assert!(a.queue_files().is_empty());
    // B delivers bob's copy; the relayed one waits in B's queue for elsewhere.example.
    b.qrun_once();
    let m = b.maildir("bob");
    assert_eq!(
        m.len(),
        1,
        "{}",
        std::fs::read_to_string(b.path("launcher.log")).unwrap_or_default()
    );
    assert_eq!(text(&body(&m[0])), "from A to B\n");
    let rcvd = headers(&m[0], "Received");
    assert!(rcvd[0].contains("with ESMTPS"), "{rcvd:?}");
    let q = b.queue_files();
    assert_eq!(q.len(), 1);
    let qf = text(&std::fs::read(b.path("spool/incoming").join(&q[0])).unwrap());
    assert!(qf.contains("with ESMTPSA"), "{qf}");
}

/// One host of the two-host test: a network namespace with an address,
/// its own dnsmasq and an smtpd on port 25.
struct NsHost {
    ns: String,
    procs: Vec<Child>,
}

impl Drop for NsHost {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// ip - run `ip ARGS`, true on success.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// host_config - a whole configuration for one of the two hosts.
fn host_config(i: &Instance, name: &str, resolver: &str) {
    i.write(
        "posthorn.toml",
        &format!(
            "hostname = \"mx.{name}\"\ndomains = [\"{name}\"]\nspool = \"spool\"\nusers = \"users\"\nsystem_users = false\naliases = \"aliases\"\nlog = \"stderr\"\nuser = \"nobody\"\nlibexec = \"{}\"\nresolver = \"{resolver}:53\"\n[queue]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n[smtp]\nreply_timeout = \"20s\"\nconnect_timeout = \"5s\"\n",
            bin_dir().display()
        ),
    );
}

/// in_ns - a Command for a Posthorn binary inside namespace `ns`, as root
/// (qrun and smtpd give root up themselves, as on a real host).
fn in_ns(i: &Instance, ns: &str, bin: &str) -> Command {
    let mut c = Command::new("ip");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("POSTHORN_CONFIG", &i.config)
        .current_dir(&i.root)
        .args(["netns", "exec", ns])
        .arg(bin_dir().join(bin));
    c
}

/// Two Posthorn hosts in network namespaces joined by a veth pair, each
/// with its own dnsmasq (MX records for the other) and smtpd on port 25:
/// mail goes both ways by MX lookup.
#[test]
fn two_hosts_in_network_namespaces_exchange_mail_by_mx() {
    if !is_root() {
        eprintln!("SKIP: network namespaces need root (CI runs this as root)");
        return;
    }
    let Some(dnsmasq) = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIP: dnsmasq is not installed");
        return;
    };
    let tag = format!("{:x}", std::process::id() & 0xffff);
    let (na, nb) = (format!("pha{tag}"), format!("phb{tag}"));
    if !ip(&["netns", "add", &na]) {
        eprintln!("SKIP: cannot make a network namespace here");
        return;
    }
    let mut ha = NsHost {
        ns: na.clone(),
        procs: Vec::new(),
    };
    assert!(ip(&["netns", "add", &nb]));
    let mut hb = NsHost {
        ns: nb.clone(),
        procs: Vec::new(),
    };
    let (va, vb) = (format!("vpa{tag}"), format!("vpb{tag}"));
    // A container may allow namespaces but not veth devices: skip there
    // too (NsHost's Drop removes the namespaces).
    if !ip(&[
        "link", "add", &va, "netns", &na, "type", "veth", "peer", "name", &vb, "netns", &nb,
    ]) {
        eprintln!("SKIP: cannot make a veth pair here");
        return;
    }
    for (ns, dev, addr) in [(&na, &va, "10.77.0.1/24"), (&nb, &vb, "10.77.0.2/24")] {
        assert!(ip(&["-n", ns, "link", "set", "lo", "up"]));
        assert!(ip(&["-n", ns, "addr", "add", addr, "dev", dev]));
        assert!(ip(&["-n", ns, "link", "set", dev, "up"]));
    }
    let a = Instance::new();
    let b = Instance::new();
    host_config(&a, "a.test", "10.77.0.1");
    host_config(&b, "b.test", "10.77.0.2");
    for (h, i, me, other, other_ip) in [
        (&mut ha, &a, "10.77.0.1", "b.test", "10.77.0.2"),
        (&mut hb, &b, "10.77.0.2", "a.test", "10.77.0.1"),
    ] {
        // Hand the instance to nobody (the harness does that in cmd()), then
        // let a root qrun make the spool, as on a real host.
        let _ = i.cmd("qrun");
        let mut q = in_ns(i, &h.ns, "qrun");
        q.arg("-o");
        let out = run_with_stdin(q, b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let dns = Command::new("ip")
            .args(["netns", "exec", &h.ns, dnsmasq])
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--pid-file=",
                "--user=root",
                "--local=/test/",
            ])
            .arg(format!("--listen-address={me}"))
            .arg(format!("--mx-host={other},mx.{other},10"))
            .arg(format!("--host-record=mx.{other},{other_ip}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        h.procs.push(dns);
        let smtpd = Command::new("ip")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&i.root)
            .args([
                "netns",
                "exec",
                &h.ns,
                "systemd-socket-activate",
                "--inetd",
                "-a",
                "-l",
            ])
            .arg(format!("{me}:25"))
            .arg(format!("--setenv=POSTHORN_CONFIG={}", i.config.display()))
            .arg(bin_dir().join("smtpd"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(i.path("launcher.log")).unwrap())
            .spawn()
            .unwrap();
        h.procs.push(smtpd);
    }
    // Both smtpds listen before anything is sent.
    for (ns, addr) in [(&na, "10.77.0.2"), (&nb, "10.77.0.1")] {
        let up = wait_for(Duration::from_secs(10), || {
            Command::new("ip")
                .args(["netns", "exec", ns, "python3", "-c"])
                .arg(format!(
                    "import socket; socket.create_connection(('{addr}', 25), 2).close()"
                ))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(up, "no smtpd at {addr}:25");
    }
    // ann on A writes to bob on B, bob answers; each host's qrun sends
    // from inside its namespace, the other's delivers.
    for (from, fi, ns, to, ti, user) in [
        ("ann@a.test", &a, &na, "bob@b.test", &b, "bob"),
        ("bob@b.test", &b, &nb, "ann@a.test", &a, "ann"),
    ] {
        let out = run_with_stdin(
            {
                let mut c = in_ns(fi, ns, "sendmail");
                c.args(["-i", "-f", from, to]);
                c
            },
            format!("Subject: from {from}\n\nhello {to}\n").as_bytes(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut q = in_ns(fi, ns, "qrun");
        q.arg("-o");
        let out = run_with_stdin(q, b"");
        assert!(
            text(&out.stderr).contains(&format!("to=<{to}>, relay=mx.{}[", &to[4..])),
            "{}",
            text(&out.stderr)
        );
        let delivered = wait_for(Duration::from_secs(20), || {
            let mut q = in_ns(ti, if ns == &na { &nb } else { &na }, "qrun");
            q.arg("-o");
            let _ = run_with_stdin(q, b"");
            ti.maildir(user).len() == 1
        });
        assert!(delivered, "{}", text(&out.stderr));
        let m = &ti.maildir(user)[0];
        assert_eq!(header(m, "Subject").unwrap(), format!("from {from}"));
        assert!(fi.queue_files().is_empty());
    }
}

/// root_cmd - a binary run as root on this instance, without the harness
/// handing the instance to nobody first (the spool belongs to `user` here).
fn root_cmd(i: &Instance, bin: &str) -> Command {
    let mut c = Command::new(bin_dir().join(bin));
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("POSTHORN_CONFIG", &i.config)
        .env("TZ", "UTC")
        .current_dir(&i.root);
    c
}

/// As root, with a mail account of its own: the relay password file is
/// readable by that account only, remote runs as nobody and still logs in,
/// with the login handed over by qrun on its input.
#[test]
fn as_root_remote_runs_as_nobody_and_gets_the_relay_login_from_qrun() {
    if !is_root() || !have_aiosmtpd() {
        eprintln!("SKIP: needs root (CI runs it) and aiosmtpd");
        return;
    }
    let Some(dns) = Dns::start(&["--host-record=relay.test,127.0.0.1".into()]) else {
        return;
    };
    let name = format!("phq{}", std::process::id() % 100000);
    let st = Command::new("useradd")
        .args(["-M", "-r", "-s", "/usr/sbin/nologin", &name])
        .status()
        .unwrap();
    assert!(st.success(), "useradd {name}");
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("userdel")
                .arg(&self.0)
                .stderr(Stdio::null())
                .status();
        }
    }
    let _gone = Gone(name.clone());
    let mut i = Instance::new();
    let certs = i.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "relay.test");
    let sink = Sink::start(
        &i.path("sink"),
        &[
            "--tls",
            certs.join("srv.pem").to_str().unwrap(),
            certs.join("srv.key").to_str().unwrap(),
            "--auth",
            "ann",
            "s3cret",
        ],
    );
    // Outside the instance (which the harness hands to nobody), the
    // account's own file, mode 0600.
    let secret = tempfile::tempdir().unwrap();
    chmod(secret.path(), 0o755);
    let pw = secret.path().join("relay-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    chmod(&pw, 0o600);
    let out = Command::new("chown").arg(&name).arg(&pw).status().unwrap();
    assert!(out.success());
    i.write_config(&format!(
        "user = \"{name}\"\nrelayhost = \"[relay.test]:{}\"\nresolver = \"127.0.0.1:{}\"\n[relay]\nuser = \"ann\"\npassword_file = \"{}\"\n[smtp]\nca_file = \"certs/ca.pem\"\n",
        sink.port,
        dns.port,
        pw.display()
    ));
    // A root qrun makes the spool and gives it to the account.
    let mut q = root_cmd(&i, "qrun");
    q.arg("-o");
    let out = run_with_stdin(q, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut c = root_cmd(&i, "sendmail");
    c.args(["-i", "-f", "ann@mail.test", "far@away.example"]);
    let out = run_with_stdin(c, b"Subject: root\n\nx\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut q = root_cmd(&i, "qrun");
    q.arg("-o");
    let out = run_with_stdin(q, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = sink.received();
    assert_eq!(got.len(), 1, "{}", text(&out.stderr));
    assert!(got[0].contains(r#""auth": "ann""#), "{}", got[0]);
    // nobody cannot read the password file: remote did not read it itself.
    let mut probe = Command::new("cat");
    probe.arg(&pw).stdout(Stdio::null()).stderr(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        probe.uid(65534).gid(65534);
    }
    assert!(!probe.status().unwrap().success());
}

/// queue.delay_warning: one "still being retried" notice per deferred
/// recipient, once the message is that old; none before, none twice.
#[test]
fn one_delay_warning_when_set() {
    let i = Instance::new();
    let closed = free_port();
    i.write(
        "posthorn.toml",
        &format!(
            "hostname = \"{HOST}\"\nspool = \"spool\"\nusers = \"users\"\nsystem_users = false\naliases = \"aliases\"\nlog = \"stderr\"\nlibexec = \"{}\"\nresolver = \"127.0.0.1:9\"\n[queue]\ndelay_warning = 2\nmin_backoff = \"1s\"\nmax_backoff = \"1s\"\n[transport]\n\"slow.test\" = \"[127.0.0.1]:{closed}\"\n",
            bin_dir().display()
        ),
    );
    i.init_spool();
    let out = i.sendmail(
        &["-i", "-f", "ann@mail.test", "a@slow.test", "b@slow.test"],
        b"Subject: later\n\nx\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = i.qrun_once();
    assert!(
        i.maildir("ann").is_empty(),
        "too young for a warning: {}",
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(2100));
    let out = i.qrun_once();
    assert!(
        text(&out.stderr).contains("sender delay notification: "),
        "{}",
        text(&out.stderr)
    );
    i.qrun_once();
    let mail = i.maildir("ann");
    assert_eq!(mail.len(), 1, "one warning, not one per pass");
    assert_eq!(
        header(&mail[0], "Subject").as_deref(),
        Some("Delayed Mail (still being retried)")
    );
    let parts = dsn_parts(&mail[0]);
    let lines: Vec<&str> = parts.lines().collect();
    assert_eq!(lines.len(), 2, "{parts}");
    assert!(
        lines[0].starts_with("rfc822; a@slow.test|4.4.1|") && lines[0].ends_with("|delayed"),
        "{parts}"
    );
    assert_eq!(i.queue_files().len(), 1, "the message itself stays queued");
}

/// Port 465: TLS from the first octet (RFC 8314), against our own smtpd
/// --submission --tls on 127.0.0.1:465 (root only: a privileged port).
#[test]
fn relayhost_on_port_465_is_implicit_tls() {
    if !is_root() {
        eprintln!("SKIP: port 465 needs root (CI runs it)");
        return;
    }
    if std::net::TcpListener::bind("127.0.0.1:465").is_err() {
        eprintln!("SKIP: 127.0.0.1:465 is taken");
        return;
    }
    let Some(dns) = Dns::start(&["--host-record=mail.test,127.0.0.1".into()]) else {
        return;
    };
    let mut b = Instance::new();
    b.init_spool();
    let certs = b.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "mail.test");
    b.write_config("user = \"nobody\"\n[tls]\ncert = \"certs/srv.pem\"\nkey = \"certs/srv.key\"\n");
    let _ = b.cmd("smtpd");
    // As root, as inetd would start it on a privileged port; smtpd drops root.
    let mut l = Command::new("systemd-socket-activate")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(&b.root)
        .args(["--inetd", "-a", "-l", "127.0.0.1:465"])
        .arg(format!("--setenv=POSTHORN_CONFIG={}", b.config.display()))
        .arg(bin_dir().join("smtpd"))
        .args(["--submission", "--tls"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(b.path("launcher.log")).unwrap())
        .spawn()
        .unwrap();
    let up = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", 465)).is_ok()
    });
    assert!(up, "no listener on 465");
    let mut a = Instance::new();
    a.write("relay-password", "x\n");
    a.write_config(&format!(
        "relayhost = \"[mail.test]:465\"\nresolver = \"127.0.0.1:{}\"\n[relay]\nuser = \"ann\"\npassword_file = \"relay-password\"\n[smtp]\nca_file = \"{}\"\n",
        dns.port,
        certs.join("ca.pem").display()
    ));
    a.init_spool();
    a.sendmail(
        &["-i", "-f", "ann@mail.test", "far@elsewhere.example"],
        b"Subject: 465\n\nx\n",
    );
    let out = a.qrun_once();
    let _ = l.kill();
    let _ = l.wait();
    assert!(
        log_of(&out, "far@elsewhere.example").contains("relay=mail.test[127.0.0.1]:465")
            && log_of(&out, "far@elsewhere.example")
                .contains("status=sent (250 2.0.0 Ok: queued as "),
        "{}",
        text(&out.stderr)
    );
    let q = b.queue_files();
    assert_eq!(q.len(), 1);
    let qf = text(&std::fs::read(b.path("spool/incoming").join(&q[0])).unwrap());
    assert!(qf.contains("with ESMTPSA"), "{qf}");
}

/// NOTIFY=SUCCESS to a server without DSN (aiosmtpd offers none): the
/// duty stays here, and the sender gets one report with Action: relayed.
#[test]
fn notify_success_to_a_server_without_dsn_is_reported_relayed() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "[transport]\n\"nodsn.test\" = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    i.init_spool();
    i.sendmail(
        &[
            "-i",
            "-f",
            "ann@mail.test",
            "-N",
            "success,failure",
            "a@nodsn.test",
        ],
        b"Subject: tell me\n\nx\n",
    );
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "b@nodsn.test"],
        b"Subject: quiet\n\nx\n",
    );
    let out = i.qrun_once();
    assert_eq!(sink.received().len(), 2, "{}", text(&out.stderr));
    let mail = i.maildir("ann");
    assert_eq!(mail.len(), 1, "only the NOTIFY=SUCCESS message is reported");
    assert_eq!(
        header(&mail[0], "Subject").as_deref(),
        Some("Successful Mail Delivery Report")
    );
    let parts = dsn_parts(&mail[0]);
    assert!(parts.starts_with("rfc822; a@nodsn.test|2.0.0|"), "{parts}");
    assert!(parts.trim_end().ends_with("|relayed"), "{parts}");
}

/// Opportunistic TLS: a failed STARTTLS handshake falls back to plaintext
/// on port 25 only (root: a privileged port); on another port it defers.
#[test]
fn a_failed_starttls_falls_back_to_plaintext_on_port_25_only() {
    if !is_root() || !have_aiosmtpd() {
        eprintln!("SKIP: port 25 needs root (CI runs it) and aiosmtpd");
        return;
    }
    if std::net::TcpListener::bind("127.0.0.1:25").is_err() {
        eprintln!("SKIP: 127.0.0.1:25 is taken");
        return;
    }
    let mut i = Instance::new();
    let certs = i.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "mx.test");
    let tls = [
        "--tls-broken",
        certs.join("srv.pem").to_str().unwrap(),
        certs.join("srv.key").to_str().unwrap(),
    ]
    .map(str::to_string);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let on25 = Sink::start_on(&i.path("s25"), &tls, 25, "127.0.0.1");
    let other = Sink::start(&i.path("other"), &tls);
    i.write_config(&format!(
        "[transport]\n\"p25.test\" = \"[127.0.0.1]:25\"\n\"other.test\" = \"[127.0.0.1]:{}\"\n",
        other.port
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "a@p25.test", "b@other.test"],
        b"Subject: tls\n\nx\n",
    );
    let out = i.qrun_once();
    let got = on25.received();
    assert_eq!(got.len(), 1, "{}", text(&out.stderr));
    assert!(got[0].contains(r#""tls": false"#), "{}", got[0]);
    assert!(
        text(&out.stderr).contains("STARTTLS handshake with 127.0.0.1[127.0.0.1] failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("trying again without TLS"));
    assert!(log_of(&out, "a@p25.test").contains("status=sent"));
    assert!(other.received().is_empty());
    assert!(
        log_of(&out, "b@other.test")
            .contains("dsn=4.7.5, status=deferred (STARTTLS handshake with"),
        "{}",
        text(&out.stderr)
    );
}

/// An internationalized address: the domain is looked up by its A-label
/// (xn--...), and the UTF-8 address goes out with SMTPUTF8.
#[test]
fn an_internationalized_domain_is_looked_up_by_its_a_label() {
    if !have_aiosmtpd() {
        return;
    }
    let Some(dns) = Dns::start(&[
        "--mx-host=xn--bcher-kva.test,mx.xn--bcher-kva.test,10".into(),
        "--host-record=mx.xn--bcher-kva.test,127.0.0.1".into(),
    ]) else {
        return;
    };
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "resolver = \"127.0.0.1:{}\"\nremote_port = {}\n",
        dns.port, sink.port
    ));
    i.init_spool();
    let out = i.sendmail(
        &["-i", "-f", "ann@mail.test", "jörg@bücher.test"],
        b"Subject: idn\n\nx\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = i.qrun_once();
    let got = sink.received();
    assert_eq!(got.len(), 1, "{}", text(&out.stderr));
    assert!(got[0].contains("SMTPUTF8"), "{}", got[0]);
    assert!(
        got[0].contains("j\\u00f6rg@b\\u00fccher.test"),
        "{}",
        got[0]
    );
}

/// The daemon sends remote mail as it arrives, reuses the kept session
/// for the next message, and lets idle sessions go (they QUIT).
#[test]
fn the_daemon_sends_remote_mail_as_it_arrives() {
    if !have_aiosmtpd() {
        return;
    }
    let mut i = Instance::new();
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "[transport]\n\"d.test\" = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    i.init_spool();
    let mut c = i.cmd("qrun");
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut d = c.spawn().unwrap();
    let mut ok = true;
    for n in 1..=3 {
        let m = format!("Subject: {n}\n\nx\n");
        i.sendmail(&["-i", "-f", "ann@mail.test", "x@d.test"], m.as_bytes());
        ok &= wait_for(Duration::from_secs(20), || sink.received().len() == n);
    }
    // Idle sessions end on their own (5 s), the daemon goes on.
    std::thread::sleep(Duration::from_millis(5500));
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "y@d.test"],
        b"Subject: 4\n\nx\n",
    );
    ok &= wait_for(Duration::from_secs(20), || sink.received().len() == 4);
    let _ = d.kill();
    let out = d.wait_with_output().unwrap();
    assert!(ok, "{}", text(&out.stderr));
    assert!(i.queue_files().is_empty());
    let log = text(&out.stderr);
    assert_eq!(
        log.matches("status=sent (250 2.0.0 Ok: queued as").count(),
        4,
        "{log}"
    );
}

/// A UTF-8 address needs SMTPUTF8; smtp-sink does not offer it: 5.6.7,
/// while an ASCII message to the same server goes through. (The need is
/// the whole envelope's: ASCII recipients of the same message share it.)
#[test]
fn a_utf8_address_to_a_server_without_smtputf8_bounces() {
    let Some((mut sink, port)) = start_smtp_sink(&[]) else {
        return;
    };
    let mut i = Instance::new();
    i.write_config(&format!(
        "[transport]\n\"u.test\" = \"[127.0.0.1]:{port}\"\n"
    ));
    i.init_spool();
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "jörg@u.test"],
        b"Subject: u\n\nx\n",
    );
    i.sendmail(
        &["-i", "-f", "ann@mail.test", "joerg@u.test"],
        b"Subject: a\n\nx\n",
    );
    let out = i.qrun_once();
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(
        log_of(&out, "jörg@u.test").contains("dsn=5.6.7, status=bounced (SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1])"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log_of(&out, "joerg@u.test").contains("status=sent"),
        "{}",
        text(&out.stderr)
    );
}
