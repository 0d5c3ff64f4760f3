//! aliases(5), .forward, bounces: what qrun expands and what it reports.

use crate::harness::*;

#[test]
fn lists_includes_nesting_and_owner() {
    let i = Instance::new();
    i.write("list.txt", "# members\nbob\ncarl@mail.test\n");
    i.write(
        "aliases",
        &format!("postmaster: ann\nstaff: ann, everyone\neveryone: :include:{}\nteam: staff, ghost\nowner-team: carl\n", i.path("list.txt").display()),
    );
    i.init_spool();
    let out = i.sendmail(
        &["-i", "-f", "sender@mail.test", "staff"],
        b"Subject: to staff\n\nhi\n",
    );
    assert!(out.status.success());
    i.qrun_once();
    for u in ["ann", "bob", "carl"] {
        let m = i.maildir(u);
        assert_eq!(m.len(), 1, "{u}");
        assert_eq!(
            header(&m[0], "Delivered-To").unwrap(),
            format!("{u}@{HOST}")
        );
    }
    // team has an owner: the failure for ghost goes to owner-team (carl), not the sender.
    let out = i.sendmail(
        &["-i", "-f", "sender@mail.test", "team"],
        b"Subject: to team\n\nhi\n",
    );
    assert!(out.status.success());
    i.qrun_once();
    let c = i.maildir("carl");
    assert_eq!(
        c.len(),
        3,
        "carl: staff mail, team mail, the owner's bounce"
    );
    let bounce = c
        .iter()
        .find(|m| header(m, "Subject").as_deref() == Some("Undelivered Mail Returned to Sender"))
        .expect("bounce to owner");
    assert!(text(bounce).contains("ghost@mail.test"));
    assert!(i.maildir("ann").len() == 2 && i.maildir("bob").len() == 2);
}

#[test]
fn pipe_and_file_targets_get_addresses_only_in_the_environment() {
    let i = Instance::new();
    let out_file = i.path("pipe.out");
    let mbox = i.path("archive.mbox");
    i.write(
        "aliases",
        &format!(
            "postmaster: ann\nbot: \"|/bin/sh -c 'cat > {0}.msg; env > {0}.env'\"\narchive: {1}\n",
            out_file.display(),
            mbox.display()
        ),
    );
    i.init_spool();
    // A sender full of shell syntax must reach the command as data only.
    let evil = "x`touch${IFS}/tmp/pwned`$(id)@mail.test";
    let out = i.sendmail(
        &["-i", "-f", evil, "bot", "archive"],
        b"Subject: pipe\n\npayload\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    i.qrun_once();
    let msg = std::fs::read(i.path("pipe.out.msg")).expect("the command ran");
    assert!(text(&msg).contains("payload"));
    assert_eq!(header(&msg, "Delivered-To").unwrap(), format!("bot@{HOST}"));
    let env = text(&std::fs::read(i.path("pipe.out.env")).unwrap());
    assert!(env.contains(&format!("SENDER={evil}")), "{env}");
    assert!(env.contains(&format!("RECIPIENT=bot@{HOST}")), "{env}");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let m = text(&std::fs::read(&mbox).expect("file target"));
    assert!(m.starts_with("From x`touch"), "{m}");
    assert!(m.contains("payload\n\n"));
    assert!(i.queue_files().is_empty());
}

#[test]
fn loops_bounce_with_5_4_6_and_unknown_users_with_5_1_1() {
    let i = Instance::new();
    i.write("aliases", "postmaster: ann\nping: pong\npong: ping\n");
    i.init_spool();
    assert!(
        i.sendmail(
            &["-i", "-f", "bob@mail.test", "ping", "nosuch"],
            b"Subject: loop\n\nx\n"
        )
        .status
        .success()
    );
    i.qrun_once();
    let b = i.maildir("bob");
    assert_eq!(b.len(), 1, "one bounce for both failures");
    let t = text(&b[0]);
    assert!(t.contains("Status: 5.4.6"), "{t}");
    assert!(t.contains("Status: 5.1.1"), "{t}");
    assert!(i.queue_files().is_empty());
}

#[test]
fn bounce_is_a_multipart_report_python_can_parse() {
    let i = Instance::new();
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-f",
            "bob@mail.test",
            "-N",
            "failure",
            "-V",
            "env-42",
            "nosuchuser@mail.test",
        ],
        b"Subject: lost\nX-Marker: original-header\n\nsecret body\n",
    );
    assert!(out.status.success());
    i.qrun_once();
    let b = i.maildir("bob");
    assert_eq!(b.len(), 1);
    std::fs::write(i.path("bounce.eml"), &b[0]).unwrap();
    let got = python(
        r#"
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
parts = list(m.iter_parts())
assert parts[1].get_content_type() == 'message/delivery-status'
blocks = parts[1].get_payload()
print(blocks[0]['Reporting-MTA'], blocks[0]['Original-Envelope-Id'])
print(blocks[1]['Final-Recipient'], blocks[1]['Action'], blocks[1]['Status'])
print(parts[2].get_content_type())
print(m['Return-Path'])
"#,
        &[i.path("bounce.eml").to_str().unwrap()],
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "dns; mail.test env-42");
    assert_eq!(lines[1], "rfc822; nosuchuser@mail.test failed 5.1.1");
    assert_eq!(lines[2], "text/rfc822-headers");
    assert_eq!(lines[3], "<>", "bounces come from the null sender");
    let t = text(&b[0]);
    assert!(t.contains("X-Marker: original-header"));
    assert!(
        !t.contains("secret body"),
        "RET=HDRS (the default) returns headers only"
    );
}

#[test]
fn notify_never_means_no_bounce_and_double_bounces_go_to_postmaster() {
    let i = Instance::new();
    i.init_spool();
    assert!(
        i.sendmail(
            &["-i", "-N", "never", "-f", "bob@mail.test", "ghost"],
            b"Subject: x\n\ny\n"
        )
        .status
        .success()
    );
    // A bounce (sender <>) that cannot be delivered goes to postmaster (ann), never to <>.
    assert!(
        i.sendmail(&["-i", "-f", "<>", "ghost2"], b"Subject: bounce\n\ny\n")
            .status
            .success()
    );
    i.qrun_once();
    assert!(i.maildir("bob").is_empty(), "NOTIFY=NEVER");
    let a = i.maildir("ann");
    assert_eq!(a.len(), 1);
    assert_eq!(
        header(&a[0], "Return-Path").unwrap(),
        format!("<double-bounce@{HOST}>")
    );
    assert!(text(&a[0]).contains("ghost2@mail.test"));
    assert!(i.queue_files().is_empty());
}

#[test]
fn forward_files() {
    let mut i = Instance::new();
    i.add_user("dave", None);
    i.write("home/dave/.forward", "\\dave, bob\n");
    i.init_spool();
    chmod(&i.path("home/dave/.forward"), 0o644);
    assert!(
        i.sendmail(&["-i", "dave"], b"Subject: fwd\n\nx\n")
            .status
            .success()
    );
    i.qrun_once();
    assert_eq!(i.maildir("dave").len(), 1, "\\dave keeps a copy");
    assert_eq!(i.maildir("bob").len(), 1);
    // A group-writable .forward is ignored: anyone in the group could redirect the mail.
    chmod(&i.path("home/dave/.forward"), 0o664);
    assert!(
        i.sendmail(&["-i", "dave"], b"Subject: fwd2\n\nx\n")
            .status
            .success()
    );
    i.qrun_once();
    assert_eq!(i.maildir("dave").len(), 2);
    assert_eq!(i.maildir("bob").len(), 1);
}

#[test]
fn newaliases_reports_errors_by_file_and_line() {
    let i = Instance::new();
    i.write(
        "aliases",
        "postmaster: ann\nbroken line here\nok: bob\nbad: \"unbalanced\nok: carl\n",
    );
    let out = i.sendmail(&["-bi"], b"");
    assert_eq!(out.status.code(), Some(65));
    let e = text(&out.stderr);
    let f = i.path("aliases");
    assert!(
        e.contains(&format!("{}:2: missing ':'", f.display())),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}:4: alias \"bad\"", f.display())),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}:5: duplicate alias \"ok\"", f.display())),
        "{e}"
    );
    i.write("aliases", "postmaster: ann\nroot: ann\n");
    let out = i.sendmail(&["-bi"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn plus_detail_goes_to_the_folder_when_it_exists() {
    let i = Instance::new();
    std::fs::create_dir_all(i.path("home/ann/Maildir/.lists/cur")).unwrap();
    i.init_spool();
    assert!(
        i.sendmail(
            &["-i", "ann+lists@mail.test", "bob+nofolder@mail.test"],
            b"Subject: d\n\nx\n"
        )
        .status
        .success()
    );
    i.qrun_once();
    assert_eq!(i.maildir_at("home/ann/Maildir/.lists").len(), 1);
    assert!(i.maildir("ann").is_empty());
    assert_eq!(i.maildir("bob").len(), 1);
}

#[test]
fn too_many_hops_is_a_loop_and_bounces() {
    let i = Instance::new();
    i.init_spool();
    let mut msg = String::new();
    for n in 0..51 {
        msg.push_str(&format!(
            "Received: from hop{n}.example by hop{}.example\n",
            n + 1
        ));
    }
    msg.push_str("Subject: around and around\n\nx\n");
    assert!(
        i.sendmail(&["-i", "-f", "bob@mail.test", "ann"], msg.as_bytes())
            .status
            .success()
    );
    i.qrun_once();
    assert!(i.maildir("ann").is_empty(), "not delivered");
    let b = i.maildir("bob");
    assert_eq!(b.len(), 1);
    let t = text(&b[0]);
    assert!(
        t.contains("Status: 5.4.6") && t.contains("too many hops (52 Received: header fields)"),
        "{t}"
    );
    // Fifty hops (and ours) are still fine.
    let ok: String = msg.lines().skip(2).map(|l| format!("{l}\n")).collect();
    assert!(i.sendmail(&["-i", "ann"], ok.as_bytes()).status.success());
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 1);
}

#[test]
fn notify_success_sends_a_delivery_report() {
    let i = Instance::new();
    i.init_spool();
    let out = i.sendmail(
        &[
            "-i",
            "-N",
            "success,failure",
            "-f",
            "bob@mail.test",
            "ann",
            "ghost",
        ],
        b"Subject: tell me\n\nx\n",
    );
    assert!(out.status.success());
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 1);
    let b = i.maildir("bob");
    assert_eq!(b.len(), 2, "one success report, one failure report");
    let success = b
        .iter()
        .find(|m| header(m, "Subject").as_deref() == Some("Successful Mail Delivery Report"))
        .expect("success report");
    let t = text(success);
    assert!(t.contains("Final-Recipient: rfc822; ann@mail.test\nOriginal-Recipient: rfc822; ann@mail.test\nAction: delivered\nStatus: 2.0.0"), "{t}");
    assert!(!t.contains("ghost"), "{t}");
    let failure = b
        .iter()
        .find(|m| header(m, "Subject").as_deref() == Some("Undelivered Mail Returned to Sender"))
        .expect("failure report");
    assert!(text(failure).contains("Action: failed\nStatus: 5.1.1"));
    // Without -N, a delivery is silent.
    assert!(
        i.sendmail(
            &["-i", "-f", "bob@mail.test", "ann"],
            b"Subject: quiet\n\nx\n"
        )
        .status
        .success()
    );
    i.qrun_once();
    assert_eq!(i.maildir("bob").len(), 2);
    assert!(i.queue_files().is_empty());
}

#[test]
fn a_backslash_on_an_envelope_recipient_skips_nothing() {
    // `\user` means "the mailbox itself, past aliases and .forward" only
    // inside aliases(5) and .forward. On an envelope recipient it would let
    // any sender reach a mailbox its owner forwards away (or the mailbox
    // behind an alias that archives or filters): refused everywhere.
    let mut i = Instance::new();
    i.add_user("dave", None);
    i.write("home/dave/.forward", "bob\n");
    i.write("aliases", "postmaster: ann\ncarl: bob\n");
    i.init_spool();
    chmod(&i.path("home/dave/.forward"), 0o644);

    // qrun --verify (and sendmail -bv): undeliverable, bad syntax.
    for who in ["\\dave", "\\carl@mail.test"] {
        let out = i.run("qrun", &["--verify", who], b"");
        let t = text(&out.stdout);
        assert_eq!(out.status.code(), Some(67), "{who}: {t}");
        assert!(
            t.contains("undeliverable") && t.contains("5.1.3"),
            "{who}: {t}"
        );
    }
    // The same name inside a .forward keeps its meaning.
    let out = i.run("qrun", &["--verify", "dave"], b"");
    assert!(text(&out.stdout).contains("-> "), "{}", text(&out.stdout));

    // sendmail: a usage error, nothing queued.
    let out = i.sendmail(&["-i", "\\dave"], b"Subject: x\n\nx\n");
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("backslash"),
        "{}",
        text(&out.stderr)
    );
    assert!(i.queue_files().is_empty());

    // smtpd: refused at RCPT, in MX mode and for a trusted local session.
    for args in [&[][..], &["--local"][..]] {
        let out = i.run(
            "smtpd",
            args,
            b"EHLO x\r\nMAIL FROM:<ann@mail.test>\r\nRCPT TO:<\\dave@mail.test>\r\nQUIT\r\n",
        );
        let t = text(&out.stdout);
        assert!(
            t.contains("\r\n553 5.1.3 ") && !t.contains("2.1.5"),
            "{args:?}: {t}"
        );
    }

    // Queued anyway (a record stream piped into enqueue, -t, an older
    // queue): bounced with 5.1.3, never delivered past the .forward.
    let out = i.sendmail(
        &["-i", "-t", "-f", "ann@mail.test"],
        b"To: \\dave@mail.test, \\carl\nSubject: t\n\nx\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    i.qrun_once();
    assert!(i.maildir("dave").is_empty(), "the .forward was skipped");
    assert!(i.maildir("carl").is_empty(), "the alias was skipped");
    assert!(i.maildir("bob").is_empty());
    let a = i.maildir("ann");
    assert_eq!(a.len(), 1, "one bounce to the sender");
    assert!(text(&a[0]).contains("Status: 5.1.3"), "{}", text(&a[0]));
    assert!(i.queue_files().is_empty());
}
