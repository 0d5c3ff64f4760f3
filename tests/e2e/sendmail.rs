//! The sendmail invocations real programs use, end to end into a mailbox.

use crate::harness::*;

/// deliver_one - submit with `args`, run the queue, return the messages of `user`.
fn submit(i: &Instance, args: &[&str], msg: &[u8]) -> std::process::Output {
    let out = i.sendmail(args, msg);
    assert!(
        out.status.success(),
        "sendmail {args:?} failed ({:?}): {}",
        out.status,
        text(&out.stderr)
    );
    i.qrun_once();
    out
}

/// assert_added - the fields sendmail must supply when the message lacks them.
fn assert_added(m: &[u8]) {
    assert!(header(m, "Date").is_some(), "no Date:\n{}", text(m));
    let mid = header(m, "Message-ID").expect("Message-ID");
    assert!(
        mid.starts_with('<') && mid.ends_with(&format!("@{HOST}>")),
        "{mid}"
    );
    assert!(
        header(m, "Received")
            .unwrap()
            .contains("(Posthorn, from userid")
    );
}

#[test]
fn debian_cron() {
    let i = Instance::new();
    i.init_spool();
    // Debian's cron writes its own From/To/Subject and names the recipient on the command line.
    let msg = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@h> date\nContent-Type: text/plain; charset=UTF-8\n\nSat Nov 28\n.\nstill the body, because of -i\n";
    submit(
        &i,
        &["-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root"],
        msg,
    );
    let m = i.maildir("ann");
    assert_eq!(m.len(), 1);
    let m = &m[0];
    assert_eq!(
        header(m, "From").unwrap(),
        "root (Cron Daemon)",
        "-F must not replace an existing From:"
    );
    assert_eq!(header(m, "Delivered-To").unwrap(), format!("ann@{HOST}"));
    assert!(
        header(m, "Return-Path")
            .unwrap()
            .ends_with(&format!("@{HOST}>"))
    );
    assert_added(m);
    assert_eq!(body(m), b"Sat Nov 28\n.\nstill the body, because of -i\n");
}

#[test]
fn cronie_with_t_and_f() {
    let i = Instance::new();
    i.init_spool();
    let msg = b"To: bob\nSubject: Cron <root@h> job\n\noutput\n";
    submit(
        &i,
        &[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ],
        msg,
    );
    let m = i.maildir("bob");
    assert_eq!(m.len(), 1);
    assert_eq!(
        header(&m[0], "Return-Path").unwrap(),
        format!("<root@{HOST}>")
    );
    assert_eq!(
        header(&m[0], "From").unwrap(),
        format!("CronDaemon <root@{HOST}>")
    );
    assert_added(&m[0]);
    assert!(i.maildir("ann").is_empty());
}

#[test]
fn anacron_without_i_stops_at_a_lone_dot() {
    let i = Instance::new();
    i.init_spool();
    submit(
        &i,
        &["-FAnacron", "-odi", "root"],
        b"Subject: anacron\n\nbefore\n.\nafter\n",
    );
    let m = i.maildir("ann");
    assert_eq!(m.len(), 1);
    assert_eq!(body(&m[0]), b"before\n");
    assert!(header(&m[0], "From").unwrap().starts_with("Anacron <"));
}

#[test]
fn mutt_with_double_dash_and_two_recipients() {
    let i = Instance::new();
    i.init_spool();
    let msg = b"From: Me <me@x.example>\nTo: ann@mail.test, bob@mail.test\nSubject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe\n";
    submit(
        &i,
        &[
            "-oem",
            "-oi",
            "-f",
            "me@x.example",
            "-B8BITMIME",
            "--",
            "ann@mail.test",
            "bob@mail.test",
        ],
        msg,
    );
    for u in ["ann", "bob"] {
        let m = i.maildir(u);
        assert_eq!(m.len(), 1, "{u}");
        assert_eq!(header(&m[0], "Return-Path").unwrap(), "<me@x.example>");
        assert_eq!(body(&m[0]), "Grüße\n".as_bytes());
    }
}

#[test]
fn mailx_and_s_nail() {
    let i = Instance::new();
    i.init_spool();
    submit(&i, &["-i", "--", "ann@mail.test"], b"Subject: mailx\n\nx\n");
    let out = submit(
        &i,
        &["-i", "-v", "bob@mail.test"],
        b"Subject: s-nail\n\ny\n",
    );
    assert!(
        text(&out.stderr).contains("queued as"),
        "-v says where it went: {}",
        text(&out.stderr)
    );
    assert_eq!(i.maildir("ann").len(), 1);
    assert_eq!(i.maildir("bob").len(), 1);
}

#[test]
fn git_send_email() {
    let i = Instance::new();
    i.init_spool();
    let msg = b"From: Dev <me@x.example>\nTo: ann@mail.test\nCc: bob@mail.test\nSubject: [PATCH] fix\nDate: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <patch-1@x.example>\n\n---\n";
    submit(
        &i,
        &["-f", "me@x.example", "-i", "ann@mail.test", "bob@mail.test"],
        msg,
    );
    let m = &i.maildir("bob")[0];
    assert_eq!(
        header(m, "Message-ID").unwrap(),
        "<patch-1@x.example>",
        "an existing Message-ID is kept"
    );
    assert_eq!(
        header(m, "Date").unwrap(),
        "Sat, 28 Nov 2026 10:00:00 +0000"
    );
    assert_eq!(headers(m, "Date").len(), 1);
    assert_eq!(i.maildir("ann").len(), 1);
}

#[test]
fn php_mail_glued_sender_and_bcc_removed() {
    let i = Instance::new();
    i.init_spool();
    let msg =
        b"To: ann@mail.test\nBcc: carl@mail.test\nSubject: from php\nX-Mailer: PHP\n\nhello\n";
    submit(&i, &["-t", "-i", "-fme@x.example"], msg);
    let a = &i.maildir("ann")[0];
    let c = &i.maildir("carl")[0];
    assert_eq!(header(a, "Return-Path").unwrap(), "<me@x.example>");
    assert!(
        header(a, "Bcc").is_none() && header(c, "Bcc").is_none(),
        "Bcc must be removed:\n{}",
        text(c)
    );
    assert_eq!(
        header(a, "From")
            .unwrap()
            .split('<')
            .nth(1)
            .map(|s| s.trim_end_matches('>')),
        Some("me@x.example")
    );
}

#[test]
fn sudo_logwatch_mdadm_unattended_upgrades() {
    let i = Instance::new();
    i.init_spool();
    // sudo and logwatch: -t only, no -i: a lone dot ends the message.
    submit(&i, &["-t"], b"To: root\nSubject: *** SECURITY information ***\n\nuser : command not allowed\n.\nignored\n");
    let m = i.maildir("ann");
    assert_eq!(m.len(), 1);
    assert_eq!(body(&m[0]), b"user : command not allowed\n");
    // mdadm: -t with a glued -f.
    submit(
        &i,
        &["-t", "-fmdadm@x.example"],
        b"From: mdadm monitoring <root>\nTo: bob\nSubject: Fail event\n\n/dev/md0\n",
    );
    assert_eq!(
        header(&i.maildir("bob")[0], "Return-Path").unwrap(),
        "<mdadm@x.example>"
    );
    // unattended-upgrades: -oi -t.
    submit(
        &i,
        &["-oi", "-t"],
        b"To: carl\nSubject: unattended-upgrades result\n\n.\nall done\n",
    );
    assert_eq!(body(&i.maildir("carl")[0]), b".\nall done\n");
}

#[test]
fn t_adds_command_line_recipients_and_prefers_resent() {
    let i = Instance::new();
    i.init_spool();
    submit(&i, &["-t", "-i", "carl"], b"To: ann\nSubject: both\n\nx\n");
    assert_eq!(i.maildir("ann").len(), 1);
    assert_eq!(i.maildir("carl").len(), 1);
    // With Resent- fields, To: is not used for recipients.
    submit(
        &i,
        &["-t", "-i"],
        b"To: ann\nResent-To: bob\nResent-Bcc: carl\nSubject: resent\n\ny\n",
    );
    assert_eq!(
        i.maildir("ann").len(),
        1,
        "To: must be ignored when Resent-To: is present"
    );
    assert_eq!(i.maildir("bob").len(), 1);
    let c = i.maildir("carl");
    assert_eq!(c.len(), 2);
    assert!(header(&c[1], "Resent-Bcc").is_none() && header(&c[0], "Resent-Bcc").is_none());
}

#[test]
fn an_argument_may_be_an_address_list() {
    let i = Instance::new();
    i.init_spool();
    submit(
        &i,
        &["-i", "ann@mail.test, Bob <bob@mail.test>"],
        b"Subject: list\n\nx\n",
    );
    assert_eq!(i.maildir("ann").len(), 1);
    assert_eq!(i.maildir("bob").len(), 1);
}

#[test]
fn missing_from_gets_full_name_and_sender() {
    let i = Instance::new();
    i.init_spool();
    submit(
        &i,
        &["-i", "-F", "Backup Job", "-f", "backup@x.example", "ann"],
        b"Subject: s\n\nb\n",
    );
    assert_eq!(
        header(&i.maildir("ann")[0], "From").unwrap(),
        "Backup Job <backup@x.example>"
    );
}

#[test]
fn injection_in_arguments_is_a_usage_error_and_queues_nothing() {
    let i = Instance::new();
    i.init_spool();
    for args in [
        vec!["-f", "a@b\r\nBcc: x@evil"],
        vec!["-F", "Name\nBcc: x@evil", "ann"],
        vec!["ann\n@x"],
    ] {
        let mut a = args.clone();
        if a.len() == 2 && a[0] == "-f" {
            a.push("ann");
        }
        let out = i.sendmail(&a, b"Subject: x\n\ny\n");
        assert_eq!(out.status.code(), Some(64), "{a:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("CR, LF or NUL"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(i.queue_files().is_empty());
}

#[test]
fn bad_options_and_modes() {
    let i = Instance::new();
    i.init_spool();
    let out = i.sendmail(&["-k", "ann"], b"x\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("unknown option -k"));
    let out = i.sendmail(&["-bs"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("220 mail.test ESMTP"));
    let out = i.sendmail(&["-i"], b"Subject: x\n\ny\n");
    assert_eq!(
        out.status.code(),
        Some(64),
        "no recipients: {}",
        text(&out.stderr)
    );
    let out = i.sendmail(&["-t"], b"Subject: nobody\n\ny\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(i.queue_files().is_empty());
    // Ignored options are accepted, values included, and -q does not eat a recipient.
    let out = i.sendmail(
        &[
            "-Am",
            "-G",
            "-h",
            "3",
            "-L",
            "tag",
            "-m",
            "-n",
            "-O",
            "x=y",
            "-U",
            "-X",
            "/tmp/x",
            "-oA/etc/aliases",
            "-ann",
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "-a is not an option: {}",
        text(&out.stderr)
    );
    let out = i.sendmail(
        &[
            "-Am", "-G", "-h", "3", "-L", "tag", "-m", "-n", "-O", "x=y", "-U", "ann",
        ],
        b"Subject: ok\n\nx\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn mailq_runq_and_names() {
    let mut i = Instance::new();
    // A DNS server that is not there: the lookup fails at once, for now.
    i.write_config("resolver = \"127.0.0.1:9\"");
    i.init_spool();
    let out = i.sendmail(&["-bp"], b"");
    assert_eq!(text(&out.stdout).trim(), "Mail queue is empty");
    // Remote mail that cannot be routed yet stays queued, deferred with a reason.
    let out = i.sendmail(
        &["-i", "-f", "ann@mail.test", "someone@remote.example"],
        b"Subject: r\n\nx\n",
    );
    assert!(out.status.success());
    i.qrun_once();
    let q = text(&i.sendmail(&["-bp"], b"").stdout);
    assert!(q.contains("someone@remote.example"), "{q}");
    assert!(q.contains("(Host or domain name not found"), "{q}");
    assert!(q.contains("-- 1 Kbytes in 1 Request."), "{q}");
    // argv[0] = mailq behaves as -bp.
    let link = i.path("mailq");
    std::os::unix::fs::symlink(bin_dir().join("sendmail"), &link).unwrap();
    let mut c2 = i.cmd("sendmail");
    let mut c2 = {
        let mut l = std::process::Command::new(&link);
        l.envs(
            c2.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        );
        if let Some((u, g)) = run_ids() {
            use std::os::unix::process::CommandExt;
            l.uid(u).gid(g);
        }
        let _ = &mut c2;
        l
    };
    let out = c2.output().unwrap();
    assert!(
        text(&out.stdout).contains("someone@remote.example"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(i.queue_files().len(), 1, "never dropped");
}

#[test]
fn verify_mode() {
    let i = Instance::new();
    i.init_spool();
    let out = i.sendmail(&["-bv", "root", "ann@mail.test"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("root: deliverable: ann@mail.test"), "{t}");
    let out = i.sendmail(&["-bv", "ghost"], b"");
    assert_eq!(out.status.code(), Some(67));
    assert!(
        text(&out.stdout).contains("ghost: undeliverable"),
        "{}",
        text(&out.stdout)
    );
    assert!(i.queue_files().is_empty(), "-bv sends nothing");
}

/// my_uid - the uid the test's programs run as.
fn my_uid() -> u32 {
    match run_ids() {
        Some((u, _)) => u,
        // SAFETY: getuid cannot fail.
        None => unsafe { libc::getuid() },
    }
}

/// subject - ann's message with this Subject:.
fn subject(i: &Instance, s: &str) -> Vec<u8> {
    i.maildir("ann")
        .into_iter()
        .find(|m| header(m, "Subject").as_deref() == Some(s))
        .unwrap_or_else(|| panic!("no message {s:?} for ann"))
}

#[test]
fn enqueue_writes_the_one_trace_field_of_a_local_submission() {
    let i = Instance::new();
    i.init_spool();
    let uid = my_uid();
    let want = format!("by {HOST} (Posthorn, from userid {uid}) id ");

    // sendmail: exactly one trace field, enqueue's, naming the queue ID.
    let out = i.sendmail(&["-i", "-v", "ann"], b"Subject: one\n\nx\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stderr)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    i.qrun_once();
    let m = i.maildir("ann");
    let r = headers(&m[0], "Received");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with(&format!("{want}{id}; ")), "{r:?}");

    // Records piped into enqueue directly, with a forged trace: enqueue's
    // own field still goes on top, naming the real submitter.
    let forged = b"Received: from trusted.example by mx.example.org; Mon, 1 Jan 2026 00:00:00 +0000\nSubject: forged\n\nx\n";
    let mut input = b"V1\nFboss@example.org\nTann@mail.test\nD\n".to_vec();
    input.extend_from_slice(format!("{}\n", forged.len()).as_bytes());
    input.extend_from_slice(forged);
    input.extend_from_slice(b"0\n");
    let out = i.run("enqueue", &[], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // -s (smtpd's "my trace is there") is believed only where it cannot
    // help a forger: here enqueue is not privileged, so it is the caller's
    // own spool anyway. The root test runs it set-group-ID.
    i.qrun_once();
    let r = headers(&subject(&i, "forged"), "Received");
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with(&want), "{r:?}");
    assert!(r[1].starts_with("from trusted.example"), "{r:?}");

    // smtpd writes its own, and enqueue adds none.
    let out = i.run(
        "smtpd",
        &[],
        b"EHLO c.example\r\nMAIL FROM:<x@c.example>\r\nRCPT TO:<ann@mail.test>\r\nDATA\r\nSubject: smtp\r\n\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert!(
        text(&out.stdout).contains("queued as"),
        "{}",
        text(&out.stdout)
    );
    i.qrun_once();
    let r = headers(&subject(&i, "smtp"), "Received");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("from c.example"), "{r:?}");
}

#[test]
fn a_uid_at_its_spool_limit_is_told_to_try_later() {
    let mut i = Instance::new();
    i.write_config("");
    let cfg = std::fs::read_to_string(&i.config).unwrap().replace(
        "[queue]\n",
        "[queue]\nuid_max_messages = 2\nuid_max_bytes = 6000\n",
    );
    std::fs::write(&i.config, cfg).unwrap();
    i.init_spool();
    // Two messages that stay queued (remote mail defers here at once).
    for n in 0..2 {
        let out = i.sendmail(
            &["-i", "x@remote.example"],
            format!("Subject: {n}\n\nx\n").as_bytes(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    i.qrun_once();
    assert_eq!(i.queue_files().len(), 2);
    // The third: exit 75 and one clear line; nothing stored, nothing left over.
    let out = i.sendmail(&["-i", "ann"], b"Subject: 3\n\nx\n");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("2 messages queued") && err.contains("queue.uid_max_messages = 2"),
        "{err}"
    );
    assert_eq!(i.queue_files().len(), 2);
    assert!(i.tmp_files().is_empty());
    // Records written to enqueue directly count the same.
    let out = i.run(
        "enqueue",
        &[],
        b"V1\nFa@mail.test\nTann@mail.test\nD\n2\nx\n0\n",
    );
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));

    // Deleted by the administrator: room again.
    let out = i.run("qrun", &["--delete", "ALL"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Delivered: room again, whatever the size cap says about each.
    for n in 0..2 {
        let out = i.sendmail(&["-i", "ann"], format!("Subject: d{n}\n\nx\n").as_bytes());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 2);

    // The byte cap: a message that would take the uid past it is refused
    // after it is read, and not stored.
    let big = format!("Subject: big\n\n{}\n", "y".repeat(3500));
    assert!(
        i.sendmail(&["-i", "x@remote.example"], big.as_bytes())
            .status
            .success()
    );
    let out = i.sendmail(&["-i", "x@remote.example"], big.as_bytes());
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("queue.uid_max_bytes = 6000"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(i.queue_files().len(), 1);
    assert!(i.tmp_files().is_empty());
}
