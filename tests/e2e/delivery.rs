//! deliver on its own (as an MDA) and through qrun: mbox, Maildir, bad input.

use crate::harness::*;

#[test]
fn deliver_as_mda_exit_codes_and_headers() {
    let i = Instance::new();
    let out = i.run(
        "deliver",
        &["-f", "a@x.example", "-a", "ann@mail.test", "ann"],
        b"Subject: mda\n\nx\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = i.maildir("ann");
    assert_eq!(header(&m[0], "Return-Path").unwrap(), "<a@x.example>");
    assert_eq!(
        header(&m[0], "Delivered-To").unwrap(),
        format!("ann@{HOST}")
    );
    let out = i.run("deliver", &["ghost"], b"Subject: x\n\ny\n");
    assert_eq!(out.status.code(), Some(67), "unknown user");
    assert!(text(&out.stderr).contains("unknown user: \"ghost\""));
    // A message that already went through this recipient is a loop.
    let looped = format!(
        "Received: from out.example by in.example\nDelivered-To: ann@{HOST}\nSubject: again\n\nz\n"
    );
    let out = i.run("deliver", &["ann"], looped.as_bytes());
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("loop"));
    assert_eq!(i.maildir("ann").len(), 1);
    // What Postfix's local(8) hands its mailbox_command: a From_ line and its
    // own Delivered-To for this very delivery. Not a loop; the From_ line goes.
    let from_postfix = format!(
        "From a@x.example  Sat Nov 28 12:00:00 2026\nReturn-Path: <a@x.example>\nDelivered-To: ann@{HOST}\nReceived: by mx.example\nSubject: via postfix\n\nbody\n"
    );
    let out = i.run(
        "deliver",
        &["-f", "a@x.example", "ann"],
        from_postfix.as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = i.maildir("ann");
    let last = m
        .iter()
        .find(|m| header(m, "Subject").as_deref() == Some("via postfix"))
        .unwrap();
    assert!(
        last.starts_with(b"Return-Path: <a@x.example>\nDelivered-To: ann@mail.test\nReturn-Path"),
        "{}",
        text(last)
    );
    assert!(!text(last).contains("From a@x.example "));
    let out = i.run("deliver", &[], b"");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn ten_concurrent_deliveries_to_one_mbox() {
    let mut i = Instance::new();
    i.add_user("mboxer", Some("mbox:~/mail/inbox"));
    i.write("placeholder", "");
    let mut children = Vec::new();
    for n in 0..10 {
        let mut c = i.cmd("deliver");
        c.args(["-f", "s@x.example", "mboxer"]);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut ch = c.spawn().unwrap();
        let body = format!(
            "Subject: msg {n}\n\nline one of {n}\nFrom the start of a line\n>From quoted\n{}\n",
            "x".repeat(20_000 * (n % 3))
        );
        let mut w = ch.stdin.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = w.write_all(body.as_bytes());
        });
        children.push(ch);
    }
    for ch in children {
        let out = ch.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let got = python(
        r#"
import mailbox, sys
mb = mailbox.mbox(sys.argv[1], create=False)
subjects = sorted(m['Subject'] for m in mb)
print(len(subjects))
for m in mb:
    n = m['Subject'].split()[1]
    body = m.get_payload()
    # mbox quoting undone by a reader that knows mboxrd is exact; Python's reader
    # leaves the quotes, so check the quoted forms.
    assert f'line one of {n}\n>From the start of a line\n>>From quoted\n' in body, body[:200]
print(' '.join(subjects))
"#,
        &[i.path("home/mboxer/mail/inbox").to_str().unwrap()],
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "10");
    assert!(
        !i.path("home/mboxer/mail/inbox.lock").exists(),
        "the dot-lock is released"
    );
}

#[test]
fn bad_input_is_stored_faithfully() {
    let i = Instance::new();
    i.init_spool();
    // NUL bytes, 8-bit and malformed headers, no final newline.
    let msg = b"Subject: \xff\xfe bin\xc3\nX-Broken header without colon\nFrom: <<<@@@>>>\n\nnul\0byte\nlast line";
    let out = i.sendmail(&["-i", "ann"], msg);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A 10 MB line.
    let mut big = b"Subject: big\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'y', 10 * 1024 * 1024));
    big.push(b'\n');
    let out = i.sendmail(&["-i", "bob"], &big);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An empty message.
    let out = i.sendmail(&["-i", "carl"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    i.qrun_once();
    let a = &i.maildir("ann")[0];
    assert!(a.windows(9).any(|w| w == b"nul\0byte\n"), "NUL kept");
    assert!(a.ends_with(b"last line\n"), "a final newline is added");
    assert!(
        a.windows(8).any(|w| w == b"\xff\xfe bin\xc3\n"),
        "8-bit header kept"
    );
    assert!(text(a).contains("X-Broken header without colon"));
    let b = &i.maildir("bob")[0];
    assert_eq!(body(b).len(), 10 * 1024 * 1024 + 1);
    let c = &i.maildir("carl")[0];
    assert!(header(c, "Message-ID").is_some() && header(c, "From").is_some());
    assert_eq!(body(c), b"");
    assert!(i.queue_files().is_empty());
}

#[test]
fn a_daemon_picks_up_new_mail_when_woken() {
    let i = Instance::new();
    i.init_spool();
    let mut c = i.cmd("qrun");
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut d = c.spawn().unwrap();
    let out = i.sendmail(&["-i", "ann"], b"Subject: wake\n\nx\n");
    assert!(out.status.success());
    let arrived = wait_for(std::time::Duration::from_secs(20), || {
        i.maildir("ann").len() == 1
    });
    // A second daemon on the same spool refuses to start.
    let second = i.run("qrun", &[], b"");
    let _ = d.kill();
    let out = d.wait_with_output().unwrap();
    assert!(arrived, "not delivered; qrun said: {}", text(&out.stderr));
    assert_eq!(second.status.code(), Some(75));
    assert!(text(&second.stderr).contains("another qrun is running"));
    let log = text(&out.stderr);
    assert!(log.contains("status=sent (delivered to maildir"), "{log}");
    assert!(log.contains(": removed"), "{log}");
}

#[test]
fn bad_configuration_is_named() {
    let mut i = Instance::new();
    i.write_config("spoool = \"x\"");
    let _ = &mut i;
    let out = i.sendmail(&["-i", "ann"], b"x\n");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains(&format!("{}: spoool: unknown key", i.config.display())),
        "{}",
        text(&out.stderr)
    );
    i.write("posthorn.toml", "spool = \"spool\"\nlog = \"file\"\n");
    let out = i.run("qrun", &["-o"], b"");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("log: must be \"syslog\" or \"stderr\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn runq_and_flush_retry_deferred_mail_now() {
    let i = Instance::new();
    i.write(
        "aliases",
        &format!(
            "postmaster: ann\nlist: :include:{}\n",
            i.path("members").display()
        ),
    );
    let cfg = std::fs::read_to_string(&i.config)
        .unwrap()
        .replace("min_backoff = \"1s\"", "min_backoff = \"1h\"")
        .replace("max_backoff = \"2s\"", "max_backoff = \"2h\"");
    std::fs::write(&i.config, cfg).unwrap();
    i.init_spool();
    assert!(
        i.sendmail(&["-i", "list"], b"Subject: one\n\nx\n")
            .status
            .success()
    );
    assert!(
        i.sendmail(&["-i", "list"], b"Subject: two\n\ny\n")
            .status
            .success()
    );
    i.qrun_once();
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    assert!(q.contains("(cannot read :include: file"), "{q}");
    assert_eq!(i.queue_files().len(), 2);
    i.write("members", "bob\n");

    // A daemon waits an hour before the retry ...
    let mut c = i.cmd("qrun");
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut d = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(i.maildir("bob").is_empty());
    // ... unless asked: `enqueue -q` is what sendmail -q uses for users who may not run the queue.
    let out = i.run("enqueue", &["-q"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flushed = wait_for(std::time::Duration::from_secs(20), || {
        i.maildir("bob").len() == 2
    });
    let _ = d.kill();
    let log = text(&d.wait_with_output().unwrap().stderr);
    assert!(flushed, "{log}");
    assert!(log.contains("flush requested"), "{log}");
    assert!(i.queue_files().is_empty());

    // With no daemon, sendmail -q (runq) runs the queue itself.
    i.write(
        "aliases",
        &format!(
            "postmaster: ann\nlist: :include:{}\nlate: :include:{}\n",
            i.path("members").display(),
            i.path("later").display()
        ),
    );
    assert!(
        i.sendmail(&["-i", "late"], b"Subject: three\n\nz\n")
            .status
            .success()
    );
    i.qrun_once();
    assert_eq!(i.queue_files().len(), 1);
    i.write("later", "carl\n");
    let out = i.sendmail(&["-q"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(i.maildir("carl").len(), 1);
    assert!(i.queue_files().is_empty());
}
