//! Sieve in deliver: what each action leaves behind (folders, flags as
//! imapd shows them, mail queued through enqueue), the RFC 5230 vacation
//! rules and memory, reject and ereject, loops, errors with their line,
//! the compiled-script cache, and the shipped spam-to-Junk script.

use crate::harness::*;
use crate::sieve_oracle::queued;
use std::path::Path;

const MSG: &[u8] = b"From: Ann <ann@mail.test>\nTo: bob@mail.test\nSubject: hello\nMessage-ID: <m1@mail.test>\n\nhi\n";

/// bob_with - an instance where bob's active script is `script`, linked
/// from ~/.dovecot.sieve into ~/sieve/ as Pigeonhole and ManageSieve keep it.
fn bob_with(script: &str, extra: &str) -> Instance {
    let mut i = Instance::new();
    if !extra.is_empty() {
        i.write_config(extra);
    }
    i.write("home/bob/sieve/main.sieve", script);
    std::os::unix::fs::symlink("sieve/main.sieve", i.path("home/bob/.dovecot.sieve")).unwrap();
    i.init_spool();
    i
}

fn deliver(i: &Instance, sender: &str, msg: &[u8]) -> std::process::Output {
    i.run("deliver", &["-f", sender, "bob"], msg)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fileinto_with_flags_keywords_and_create_as_imapd_shows_them() {
    let i = bob_with(
        "require [\"fileinto\", \"imap4flags\", \"mailbox\"];\nfileinto :create :flags [\"\\\\Seen\", \"$Junk\", \"Later\"] \"Junk\";\nfileinto :create \"Lists.rust\";\n",
        "",
    );
    let out = deliver(&i, "ann@mail.test", MSG);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(
        log.contains(
            "status=sent (sieve: delivered to folder Junk, delivered to folder Lists.rust)"
        ),
        "{log}"
    );
    // The compiled form sits beside the script the link points to.
    assert!(i.path("home/bob/sieve/main.phsvbin").is_file());
    let crlf = "a LOGIN bob x\nb LIST (SPECIAL-USE) \"\" \"*\"\nc SELECT Junk\nd FETCH 1 FLAGS\ne SELECT Lists.rust\nf FETCH 1 FLAGS\ng LOGOUT\n"
        .replace('\n', "\r\n");
    let s = i.run("imapd", &[], crlf.as_bytes());
    let t = text(&s.stdout);
    assert!(t.contains("(\\HasNoChildren \\Junk) \".\" Junk"), "{t}");
    assert!(
        t.contains("* 1 FETCH (FLAGS (\\Seen \\Recent $Junk Later))"),
        "{t}"
    );
    assert!(
        t.contains("* 1 FETCH (FLAGS (\\Recent))") || t.contains("* 1 FETCH (FLAGS ())"),
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(i.path("home/bob/Maildir/.Junk/dovecot-keywords")).unwrap(),
        "0 $Junk\n1 Later\n"
    );
}

#[test]
fn folder_names_cannot_leave_the_maildir() {
    let i = bob_with(
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"../../escape\";\n",
        "",
    );
    let out = deliver(&i, "ann@mail.test", MSG);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid mailbox name"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(i.maildir("bob").len(), 1);
    let home = files_in(&i.path("home"));
    assert_eq!(home, ["ann", "bob", "carl"]);
    assert!(!i.path("escape").exists() && !i.path("home/escape").exists());
}

#[test]
fn errors_keep_the_message_and_name_file_and_line() {
    // A compile error.
    let i = bob_with("require \"fileinto\";\nkeep;\nfileinto \"x\" \"y\";\n", "");
    let out = deliver(&i, "ann@mail.test", MSG);
    assert!(out.status.success());
    let log = text(&out.stderr);
    assert!(
        log.contains(".dovecot.sieve: compile error: line 3: fileinto takes 1 positional argument"),
        "{log}"
    );
    assert_eq!(i.maildir("bob").len(), 1);
    // A run-time error: one redirect too many (Pigeonhole's limit of 4).
    let five: String = (1..=5)
        .map(|n| format!("redirect \"r{n}@example.com\";\n"))
        .collect();
    let i = bob_with(&five, "");
    let out = deliver(&i, "ann@mail.test", MSG);
    assert!(out.status.success());
    let log = text(&out.stderr);
    assert!(
        log.contains(
            "run-time error: line 5: total number of redirect actions exceeds policy limit (4)"
        ),
        "{log}"
    );
    assert_eq!(i.maildir("bob").len(), 1);
    assert!(queued(&i).is_empty(), "nothing is sent when the run fails");
}

#[test]
fn the_cache_follows_the_script() {
    let i = bob_with("require \"fileinto\";\nfileinto \"A\";\n", "");
    std::fs::create_dir_all(i.path("home/bob/Maildir/.A/cur")).unwrap();
    std::fs::create_dir_all(i.path("home/bob/Maildir/.B/cur")).unwrap();
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    let cache = i.path("home/bob/sieve/main.phsvbin");
    let first = std::fs::read(&cache).unwrap();
    // Rewritten by a client (as ManageSieve would): the next delivery
    // compiles the new text, whatever the old cache said.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(
        i.path("home/bob/sieve/main.sieve"),
        "require \"fileinto\";\nfileinto \"B\";\n",
    )
    .unwrap();
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    assert_eq!(i.maildir_at("home/bob/Maildir/.A").len(), 1);
    assert_eq!(i.maildir_at("home/bob/Maildir/.B").len(), 1);
    assert_ne!(std::fs::read(&cache).unwrap(), first);
}

#[test]
fn redirect_goes_through_enqueue_and_a_loop_stops_at_its_marker() {
    let mut i = bob_with("redirect \"carl@mail.test\";\n", "");
    i.write("home/carl/.dovecot.sieve", "redirect \"bob@mail.test\";\n");
    i.write_config("");
    let out = i.sendmail(&["-i", "-f", "ann@mail.test", "bob"], MSG);
    assert!(out.status.success());
    for _ in 0..4 {
        i.qrun_once();
    }
    // bob -> carl -> bob, where bob's own marker stops it: kept by bob.
    assert!(i.maildir("carl").is_empty());
    let bob = i.maildir("bob");
    assert_eq!(bob.len(), 1);
    let m = text(&bob[0]);
    assert!(m.contains("X-Sieve-Redirected-From: bob@mail.test"), "{m}");
    assert!(m.contains("X-Sieve-Redirected-From: carl@mail.test"), "{m}");
    // The original envelope sender was kept (redirect_sender = "sender").
    assert!(m.starts_with("Return-Path: <ann@mail.test>"), "{m}");
    assert!(i.queue_files().is_empty());
}

#[test]
fn vacation_answers_once_per_period_by_the_rules_of_rfc5230() {
    let i = bob_with(
        "require \"vacation\";\nvacation :days 2 :subject \"Away\" \"Back on Monday.\";\n",
        "",
    );
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    let q = queued(&i);
    assert_eq!(q.len(), 1, "{q:?}");
    let (sender, to, m) = &q[0];
    assert_eq!(sender, "", "null envelope sender");
    assert_eq!(to, &["ann@mail.test"]);
    for h in [
        "Subject: Away\n",
        "To: <ann@mail.test>\n",
        "From: <bob@mail.test>\n",
        "In-Reply-To: <m1@mail.test>\n",
        "References: <m1@mail.test>\n",
        "Auto-Submitted: auto-replied (vacation)\n",
    ] {
        assert!(m.contains(h), "{h} in {m}");
    }
    assert!(m.ends_with("\n\nBack on Monday.\n"), "{m}");
    // Remembered in bob's home: the same sender gets no second reply.
    assert!(i.path("home/bob/.posthorn-sieve-dupes").is_file());
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    assert_eq!(queued(&i).len(), 1);
    // No reply to <>, to lists, to auto-submitted mail, to daemons, or
    // when bob is not a recipient; all of it still delivered.
    let cases: [(&str, &[u8]); 5] = [
        ("", MSG),
        (
            "carl@mail.test",
            b"To: bob@mail.test\nList-Id: <l.mail.test>\n\nx\n",
        ),
        (
            "carl@mail.test",
            b"To: bob@mail.test\nAuto-Submitted: auto-generated\n\nx\n",
        ),
        ("MAILER-DAEMON@mail.test", b"To: bob@mail.test\n\nx\n"),
        ("carl@mail.test", b"To: dave@mail.test\n\nx\n"),
    ];
    for (s, m) in cases {
        let out = deliver(&i, s, m);
        assert!(out.status.success());
        assert!(
            text(&out.stderr).contains("not sending vacation reply"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(queued(&i).len(), 1);
    assert_eq!(i.maildir("bob").len(), 7);
}

#[test]
fn reject_sends_an_mdn_and_ereject_fails_the_delivery() {
    let i = bob_with("require \"reject\";\nreject \"I do not want this.\";\n", "");
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    assert!(i.maildir("bob").is_empty());
    let q = queued(&i);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, "");
    assert_eq!(q[0].1, ["ann@mail.test"]);
    assert!(
        q[0].2.contains("report-type=disposition-notification"),
        "{}",
        q[0].2
    );
    assert!(
        q[0].2
            .contains("Disposition: automatic-action/MDN-sent-automatically; deleted")
    );
    assert!(q[0].2.contains("I do not want this."));
    // ereject: exit 77, the reason with its enhanced code, for the DSN.
    let i = bob_with("require \"ereject\";\nereject \"Go away.\";\n", "");
    let out = deliver(&i, "ann@mail.test", MSG);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("deliver: 5.7.1 Go away."),
        "{}",
        text(&out.stderr)
    );
    // Through qrun, the sender gets a bounce that says why.
    let out = i.sendmail(&["-i", "-f", "ann@mail.test", "bob"], MSG);
    assert!(out.status.success());
    i.qrun_once();
    i.qrun_once();
    let bounce = i.maildir("ann");
    assert_eq!(bounce.len(), 1);
    let b = text(&bounce[0]);
    assert!(b.contains("5.7.1") && b.contains("Go away."), "{b}");
    // A message from <> is not rejected back: it is dropped.
    let out = deliver(&i, "", MSG);
    assert!(out.status.success());
    assert!(i.maildir("bob").is_empty());
}

#[test]
fn duplicate_and_editheader() {
    let i = bob_with(
        "require [\"duplicate\", \"editheader\", \"fileinto\"];\nif duplicate { discard; stop; }\naddheader \"X-Seen-By\" \"sieve\";\ndeleteheader \"subject\";\ndeleteheader \"received\";\n",
        "",
    );
    let m = b"Received: from x by y; Thu, 5 Nov 2026 01:02:03 +0000\nTo: bob@mail.test\nSubject: one\nMessage-ID: <d1@mail.test>\n\nbody\n";
    assert!(deliver(&i, "ann@mail.test", m).status.success());
    assert!(deliver(&i, "ann@mail.test", m).status.success());
    let got = i.maildir("bob");
    assert_eq!(got.len(), 1, "the second copy is a duplicate");
    let t = text(&got[0]);
    assert!(
        t.contains("X-Seen-By: sieve\nReceived: from x"),
        "Received is protected: {t}"
    );
    assert!(!t.contains("Subject:"), "{t}");
    assert!(t.ends_with("\n\nbody\n"), "{t}");
}

#[test]
fn spam_to_junk_as_a_global_script() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sieve/spam-to-junk.sieve");
    let script = script.canonicalize().unwrap();
    let mut i = Instance::new();
    i.write_config(&format!("[sieve]\nbefore = [\"{}\"]\n", script.display()));
    i.init_spool();
    let spam = b"To: bob@mail.test\nSubject: win\nX-Spam: yes\n\nx\n";
    assert!(deliver(&i, "ann@mail.test", spam).status.success());
    assert!(deliver(&i, "ann@mail.test", MSG).status.success());
    assert_eq!(i.maildir_at("home/bob/Maildir/.Junk").len(), 1);
    assert_eq!(i.maildir("bob").len(), 1);
    assert_eq!(
        std::fs::read_to_string(i.path("home/bob/Maildir/.Junk/posthorn-special-use")).unwrap(),
        "\\Junk\n"
    );
    // As an after-script with SpamAssassin's header, the user's rule wins.
    let mut i = Instance::new();
    i.write_config(&format!(
        "spam_header = \"X-Spam-Flag: YES\"\n[sieve]\nafter = [\"{}\"]\n",
        script.display()
    ));
    i.write(
        "home/bob/.dovecot.sieve",
        "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"invoice\" { fileinto :create \"Work\"; }\n",
    );
    i.init_spool();
    let flagged = b"To: bob@mail.test\nSubject: cheap\nX-Spam-Flag: YES\n\nx\n";
    let invoice = b"To: bob@mail.test\nSubject: invoice\nX-Spam-Flag: YES\n\nx\n";
    let rspamd = b"To: bob@mail.test\nSubject: other\nX-Spam: Yes\n\nx\n";
    for m in [&flagged[..], &invoice[..], &rspamd[..]] {
        assert!(deliver(&i, "ann@mail.test", m).status.success());
    }
    assert_eq!(i.maildir_at("home/bob/Maildir/.Junk").len(), 1);
    assert_eq!(i.maildir_at("home/bob/Maildir/.Work").len(), 1);
    assert_eq!(i.maildir("bob").len(), 1);
}
