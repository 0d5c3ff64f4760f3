//! imapd: golden transcripts over pipes (tests/data/imapd/*.in against
//! *.out, over a corpus of MIME-structured messages), live sessions
//! beside deliveries and expunges, and real clients (Python's imaplib)
//! through systemd-socket-activate.
//!
//! POSTHORN_BLESS=1 rewrites the .out files from what imapd says; review
//! the diff before committing it.

use crate::harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// data - tests/data/imapd.
fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/imapd")
}

/// seed - the corpus into ann's INBOX (cur/, no flags), message n
/// delivered at 2026-02-0n 12:00 UTC, so UIDs and dates are fixed.
fn seed(i: &Instance) -> Vec<PathBuf> {
    let dir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(data().join("corpus"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (n, p) in names.iter().enumerate() {
        let t = 1_769_947_200 + 86400 * n as u64; // 2026-02-01 12:00 UTC
        let f = dir.join(format!("cur/{t}.M{n}P1.test:2,"));
        std::fs::copy(p, &f).unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t))
            .unwrap();
        out.push(f);
    }
    out
}

/// normalize - what changes from run to run: UIDVALIDITY, also in the
/// UIDPLUS codes.
fn normalize(s: &str) -> String {
    let mut s = s.to_string();
    for key in ["UIDVALIDITY ", "APPENDUID ", "COPYUID "] {
        let mut out = String::new();
        for (k, part) in s.split(key).enumerate() {
            if k > 0 {
                out.push_str(key);
                let digits = part.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    out.push_str("<uidvalidity>");
                }
                out.push_str(&part[digits..]);
            } else {
                out.push_str(part);
            }
        }
        s = out;
    }
    s
}

/// session - run imapd over pipes with `input` (LF made CRLF).
fn session(i: &Instance, input: &str) -> (String, String) {
    let crlf = input.replace('\n', "\r\n");
    let out = i.run("imapd", &[], crlf.as_bytes());
    (text(&out.stdout), text(&out.stderr))
}

/// golden - run tests/data/imapd/NAME.in on a seeded instance and compare
/// with NAME.out.
fn golden(name: &str) {
    golden_with(name, "", |_| {});
}

/// golden_with - `golden` with extra configuration, and a check of the
/// instance afterwards.
fn golden_with(name: &str, config: &str, after: impl FnOnce(&Instance)) {
    let mut i = Instance::new();
    if !config.is_empty() {
        i.write_config(config);
    }
    seed(&i);
    let input = std::fs::read_to_string(data().join(format!("{name}.in"))).unwrap();
    let (out, err) = session(&i, &input);
    // Every line ends in CRLF; no bare LF outside literals' own CRLFs.
    assert!(out.ends_with("\r\n"), "{out}");
    assert!(!out.replace("\r\n", "").contains('\n'), "bare LF: {out}");
    let got = normalize(&out).replace("\r\n", "\n");
    let path = data().join(format!("{name}.out"));
    after(&i);
    if std::env::var_os("POSTHORN_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let at = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "{name}: first difference at line {}:\n got: {:?}\nwant: {:?}\n--- stderr\n{err}",
            at + 1,
            g.get(at),
            w.get(at)
        );
    }
}

#[test]
fn golden_rfc3501_section8_sample() {
    golden("rfc3501-section8");
}

#[test]
fn golden_fetch_sections_over_the_mime_corpus() {
    golden("fetch-sections");
}

#[test]
fn golden_store_search_copy_expunge() {
    golden("store-search");
}

#[test]
fn golden_mailboxes() {
    golden("mailboxes");
}

#[test]
fn golden_errors_and_sasl() {
    golden("errors");
}

#[test]
fn golden_slash_as_the_hierarchy_separator() {
    golden_with("separator-slash", "[imap]\nseparator = \"/\"\n", |i| {
        // Still Maildir++ on disk.
        assert!(i.path("home/ann/Maildir/.Lists.go/cur").is_dir());
        assert!(!i.path("home/ann/Maildir/.Lists.rust").exists());
    });
}

#[test]
fn golden_idle_rfc2177_example() {
    golden("idle");
}

#[test]
fn golden_unselect_namespace_id_enable() {
    golden("extensions");
}

#[test]
fn golden_move_rfc6851() {
    golden("move");
}

#[test]
fn golden_special_use_and_status_size() {
    golden("special-use");
}

/// Issue 13: SENT* by the day written, address keys on parsed
/// addresses, ENVELOPE's address grammar, SORT by CC and DISPLAYFROM,
/// PARTIAL in normal form and from the end, 4294967295 as a UID (never
/// `*`), MOVE and COPY into the selected mailbox, EXAMINE and \\Recent.
#[test]
fn golden_conformance_rfc3501_and_extensions() {
    golden("conformance");
}

/// INTERNALDATE is shown, and BEFORE/ON/SINCE count days, in the
/// server's local zone, as Dovecot does: a message APPENDed at 01:30 on
/// 25 March in Helsinki (23:30 on the 24th in UTC) is ON 25-Mar-2007
/// there. A POSIX TZ string needs no zone files.
#[test]
fn internal_dates_follow_the_servers_local_zone() {
    let script = "a LOGIN ann x\r\nb APPEND INBOX \"25-Mar-2007 01:30:00 +0200\" {14+}\r\nSubject: x\r\n\r\n\r\n\
        c SELECT INBOX\r\nd SEARCH ON 25-Mar-2007\r\ne SEARCH BEFORE 25-Mar-2007\r\n\
        f SEARCH SINCE 25-Mar-2007 BEFORE 26-Mar-2007\r\ng FETCH 1 INTERNALDATE\r\nz LOGOUT\r\n";
    let run = |tz: &str| {
        let i = Instance::new();
        let mut c = i.cmd("imapd");
        c.env("TZ", tz);
        text(&run_with_stdin(c, script.as_bytes()).stdout)
    };
    let helsinki = run("EET-2EEST,M3.5.0/3,M10.5.0/4");
    assert!(helsinki.contains("* SEARCH 1\r\nd OK"), "{helsinki}");
    assert!(helsinki.contains("* SEARCH\r\ne OK"), "{helsinki}");
    assert!(helsinki.contains("* SEARCH 1\r\nf OK"), "{helsinki}");
    assert!(
        helsinki.contains("INTERNALDATE \"25-Mar-2007 01:30:00 +0200\""),
        "{helsinki}"
    );
    let utc = run("UTC");
    assert!(utc.contains("* SEARCH\r\nd OK"), "{utc}");
    assert!(utc.contains("* SEARCH 1\r\ne OK"), "{utc}");
    assert!(
        utc.contains("INTERNALDATE \"24-Mar-2007 23:30:00 +0000\""),
        "{utc}"
    );
}

/// message/global nests only for IMAP4rev2 (RFC 9051's media-message).
#[test]
fn golden_message_global_for_rev2_only() {
    golden("message-global");
}

/// Before login, an APPEND literal is capped as any command's (64 KiB):
/// refused before it is sent, or the connection closed for a
/// non-synchronizing one.
#[test]
fn golden_prelogin_append_is_capped() {
    golden("prelogin-append");
}

#[test]
fn golden_within_and_appendlimit() {
    golden_with("within-appendlimit", "message_size_limit = 100", |_| {});
}

#[test]
fn golden_esearch_rfc4731() {
    golden("esearch");
}

#[test]
fn golden_searchres_rfc5182() {
    golden("searchres");
}

#[test]
fn golden_list_extended_and_list_status() {
    golden("list-extended");
}

#[test]
fn golden_sort_rfc5256() {
    golden("sort");
}

#[test]
fn golden_esort_and_partial_rfc5267() {
    golden("esort");
}

#[test]
fn golden_sort_display_rfc5957() {
    golden("sort-display");
}

#[test]
fn golden_context_updates_rfc5267() {
    golden("context");
}

#[test]
fn golden_thread_orderedsubject() {
    golden("thread");
}

#[test]
fn golden_thread_references() {
    golden("thread-references");
}

#[test]
fn golden_sasl_login_plain_and_cancel() {
    golden("sasl");
}

#[test]
fn golden_condstore_qresync_rfc7162() {
    golden("condstore");
}

#[test]
fn golden_binary_rfc3516() {
    golden_with("binary", "", |i| {
        // The literal8 message is stored as it came, NULs and all.
        let cur = i.path("home/ann/Maildir/cur");
        let stored = std::fs::read_dir(cur)
            .unwrap()
            .flatten()
            .map(|e| std::fs::read(e.path()).unwrap())
            .any(|m| m.ends_with(b"\r\n\r\n\x00\x01\x02bin\x00\r\n"));
        assert!(stored);
    });
}

#[test]
fn golden_multiappend_rfc3502() {
    golden_with("multiappend", "message_size_limit = 400", |i| {
        // Refused and failed APPENDs left nothing behind in tmp/.
        let tmp = i.path("home/ann/Maildir/.saved-messages/tmp");
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    });
}

#[test]
fn golden_create_special_use_rfc6154() {
    golden_with("create-special-use", "", |i| {
        let f = i.path("home/ann/Maildir/.MySpecial/posthorn-special-use");
        assert_eq!(std::fs::read_to_string(f).unwrap(), "\\Drafts\n\\Sent\n");
        // A refused CREATE made no folder.
        assert!(!i.path("home/ann/Maildir/.Other").exists());
        assert!(!i.path("home/ann/Maildir/.Foo").exists());
    });
}

#[test]
fn golden_first_login_folders_once() {
    // No `[imap] folders` key: the default list.
    golden_with(
        "first-login-folders",
        "# [imap] folders: the default\n",
        |i| {
            assert!(i.path("home/ann/Maildir/posthorn-folders").exists());
            // The folder the user deleted is not made again at the next login.
            let (out, _) = session(i, "a LOGIN ann x\nb LIST \"\" \"*\"\nc LOGOUT\n");
            assert!(out.contains("\\Sent) \".\" Sent\r\n"), "{out}");
            assert!(!out.contains("Junk"), "{out}");
        },
    );
}

#[test]
fn golden_rfc9051_imap4rev2_after_enable() {
    golden_with("rfc9051", "[imap]\nseparator = \"/\"\n", |i| {
        // UTF-8 names are modified UTF-7 on disk, as Dovecot keeps them.
        assert!(i.path("home/ann/Maildir/.D&AOk-j&AOA- vu/cur").is_dir());
    });
}

#[test]
fn golden_utf8_accept_rfc6855() {
    golden_with("utf8-accept", "", |i| {
        let m = i.path("home/ann/Maildir");
        assert!(m.join(".&ZeVnLIqe-.&U,BTFw-/cur").is_dir());
        assert!(m.join(".A&-B/cur").is_dir());
        assert!(m.join(".Brouillons &AOk-t&AOk-/cur").is_dir());
        // The refused APPEND stored nothing.
        assert_eq!(std::fs::read_dir(m.join("new")).unwrap().count(), 0);
    });
}

#[test]
fn golden_literals_everywhere() {
    golden("literals");
}

/// A live session over pipes: send a command, read to its tagged reply.
struct Live {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    n: u32,
}

impl Live {
    /// start - imapd, greeted, logged in as ann.
    fn start(i: &Instance) -> Live {
        let mut l = Live::spawn(i.cmd("imapd"));
        assert!(l.cmd("LOGIN ann x").last().unwrap().contains("OK"));
        l
    }

    /// spawn - imapd from `c`, greeted, not logged in.
    fn spawn(mut c: Command) -> Live {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut greeting = String::new();
        output.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        Live {
            child,
            input,
            output,
            n: 0,
        }
    }

    /// cmd - one command; the response lines (literals inline).
    fn cmd(&mut self, c: &str) -> Vec<String> {
        self.n += 1;
        let tag = format!("t{}", self.n);
        write!(self.input, "{tag} {c}\r\n").unwrap();
        self.input.flush().unwrap();
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.output.read_line(&mut l).unwrap() > 0,
                "EOF after {lines:?}"
            );
            // A literal: read its octets into the same line.
            while let Some(n) = l
                .trim_end()
                .strip_suffix('}')
                .and_then(|x| x.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut buf = vec![0; n];
                self.output.read_exact(&mut buf).unwrap();
                l.push_str(&String::from_utf8_lossy(&buf));
                let mut rest = String::new();
                self.output.read_line(&mut rest).unwrap();
                l.push_str(&rest);
            }
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l.trim_end().to_string());
            if done {
                return lines;
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deliver - one message to ann through the real deliver.
fn deliver(i: &Instance, subject: &str) {
    let out = i.run(
        "deliver",
        &["ann"],
        format!("From: x@y\nSubject: {subject}\n\nbody\n").as_bytes(),
    );
    assert!(out.status.success(), "deliver: {}", text(&out.stderr));
}

/// exists - the EXISTS count in a response, if any.
fn exists(lines: &[String]) -> Option<usize> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .next_back()
}

/// uids - `UID FETCH 1:* UID` as a list.
fn uids(l: &mut Live) -> Vec<u32> {
    l.cmd("UID FETCH 1:* UID")
        .iter()
        .filter_map(|x| x.split("UID ").nth(1)?.trim_end_matches(')').parse().ok())
        .collect()
}

#[test]
fn two_sessions_see_deliveries_expunges_and_flags_of_each_other() {
    let i = Instance::new();
    seed(&i);
    let mut a = Live::start(&i);
    let mut b = Live::start(&i);
    let ra = a.cmd("SELECT INBOX");
    let rb = b.cmd("SELECT INBOX");
    assert_eq!(exists(&ra), Some(5));
    assert_eq!(exists(&rb), Some(5));
    // \Recent went to exactly one of them.
    let recent = |r: &[String]| r.iter().any(|l| l == "* 5 RECENT");
    assert!(recent(&ra) != recent(&rb), "{ra:?} {rb:?}");
    deliver(&i, "new one");
    deliver(&i, "new two");
    let r = a.cmd("NOOP");
    assert_eq!(exists(&r), Some(7), "{r:?}");
    // A third session expunges message 2 while a and b watch.
    let mut c = Live::start(&i);
    c.cmd("SELECT INBOX");
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)");
    let r = c.cmd("EXPUNGE");
    assert!(r.contains(&"* 2 EXPUNGE".to_string()), "{r:?}");
    // Not during a sequence-number FETCH (RFC 3501 §7.4.1) ...
    let r = b.cmd("FETCH 1:2 FLAGS");
    assert!(!r.iter().any(|l| l.ends_with("EXPUNGE")), "{r:?}");
    // ... but at the next NOOP, with the deliveries.
    let r = b.cmd("NOOP");
    assert!(r.contains(&"* 2 EXPUNGE".to_string()), "{r:?}");
    assert_eq!(exists(&r), Some(6), "{r:?}");
    let r = a.cmd("STORE 1 +FLAGS (\\Flagged)");
    assert!(r[0].contains("\\Flagged"), "{r:?}");
    let r = b.cmd("NOOP");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (FLAGS (\\Flagged")),
        "{r:?}"
    );
    // Every session agrees on the UIDs; none is ever reused.
    let (ua, ub, uc) = (uids(&mut a), uids(&mut b), uids(&mut c));
    assert_eq!(ua, vec![1, 3, 4, 5, 6, 7]);
    assert_eq!(ua, ub);
    assert_eq!(ua, uc);
    deliver(&i, "after");
    let r = c.cmd("UID FETCH 8 UID");
    assert!(r.iter().any(|l| l.contains("UID 8")), "{r:?}");
}

impl Live {
    /// send - one raw line, not waiting for anything.
    fn send(&mut self, line: &str) {
        write!(self.input, "{line}\r\n").unwrap();
        self.input.flush().unwrap();
    }

    /// line - the next response line.
    fn line(&mut self) -> String {
        let mut l = String::new();
        assert!(self.output.read_line(&mut l).unwrap() > 0, "EOF");
        l.trim_end().to_string()
    }

    /// until - response lines up to and including the first that `stop`
    /// accepts.
    fn until(&mut self, stop: impl Fn(&str) -> bool) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line();
            let end = stop(&l);
            v.push(l);
            if end {
                return v;
            }
        }
    }
}

#[test]
fn idle_pushes_deliveries_flags_and_expunges_by_others_at_once() {
    let i = Instance::new();
    seed(&i);
    let mut a = Live::start(&i);
    let mut b = Live::start(&i);
    a.cmd("SELECT INBOX");
    b.cmd("SELECT INBOX");
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    // Bounds are generous, for correctness only: inotify answers in
    // milliseconds, the polling fallback within a second.
    let bound = Duration::from_secs(5);
    deliver(&i, "while idle");
    let t = std::time::Instant::now();
    let r = a.until(|l| l.ends_with(" EXISTS"));
    assert!(t.elapsed() < bound, "{:?} for {r:?}", t.elapsed());
    assert_eq!(r.last().unwrap(), "* 6 EXISTS", "{r:?}");
    b.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)");
    let t = std::time::Instant::now();
    let r = a.until(|l| l.contains(" FETCH "));
    assert!(t.elapsed() < bound, "{:?} for {r:?}", t.elapsed());
    assert!(
        r.last().unwrap().starts_with("* 2 FETCH (FLAGS (\\Flagged"),
        "{r:?}"
    );
    b.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)");
    b.cmd("EXPUNGE");
    let t = std::time::Instant::now();
    let r = a.until(|l| l.ends_with(" EXPUNGE"));
    assert!(t.elapsed() < bound, "{:?} for {r:?}", t.elapsed());
    assert_eq!(r.last().unwrap(), "* 3 EXPUNGE", "{r:?}");
    a.send("DONE");
    let r = a.until(|l| l.starts_with("i1 "));
    assert_eq!(r.last().unwrap(), "i1 OK IDLE terminated", "{r:?}");
    // The session carries on where IDLE left it.
    assert_eq!(uids(&mut a), vec![1, 2, 4, 5, 6]);
}

/// have_imapclient - whether Python's imapclient is there; says so when not.
fn have_imapclient() -> bool {
    let have = Command::new("python3")
        .args(["-c", "import imapclient"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("skipped: imapclient is not installed (pip install imapclient; CI installs it)");
    }
    have
}

#[test]
fn python_imapclient_idle_sees_a_delivery_and_an_expunge() {
    if !have_imapclient() {
        return;
    }
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    // The client says when it idles and reports each push as a line;
    // the test delivers and expunges in between.
    let mut py = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys, time
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
c.select_folder("INBOX")
c.idle()
print("idling", flush=True)
def wait_for(word):
    end = time.time() + 20
    while time.time() < end:
        for r in c.idle_check(timeout=1):
            if len(r) > 1 and r[1] == word:
                return r[0]
    return None
print("exists", wait_for(b"EXISTS"), flush=True)
sys.stdin.readline()
print("expunge", wait_for(b"EXPUNGE"), flush=True)
text, responses = c.idle_done()
print("done", text.decode(), flush=True)
c.logout()
"#,
        )
        .arg(l.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = py.stdin.take().unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut next = || {
        let mut s = String::new();
        out.read_line(&mut s).unwrap();
        s.trim_end().to_string()
    };
    assert_eq!(next(), "idling");
    deliver(&i, "for imapclient");
    let t = std::time::Instant::now();
    assert_eq!(next(), "exists 6");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut b = Live::start(&i);
    b.cmd("SELECT INBOX");
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.cmd("EXPUNGE");
    let t = std::time::Instant::now();
    writeln!(input, "go").unwrap();
    input.flush().unwrap();
    assert_eq!(next(), "expunge 1");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(next(), "done IDLE terminated");
    assert!(py.wait().unwrap().success());
}

#[test]
fn python_imapclient_moves_finds_special_folders_and_others_see_the_expunges() {
    if !have_imapclient() {
        return;
    }
    let i = Instance::new();
    seed(&i);
    let mut watcher = Live::start(&i);
    watcher.cmd("SELECT INBOX");
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import sys, json, imapclient
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
out = {"move": c.has_capability("MOVE")}
c.create_folder("Archive")
c.select_folder("INBOX")
c.add_flags([4], [b"\\Deleted"])
c.move([2, 3], "Archive")
out["inbox"] = sorted(c.search(["ALL"]))
out["archive"] = c.folder_status("Archive", ["MESSAGES", "UIDNEXT"])[b"MESSAGES"]
c.create_folder("Sent Messages")
# imapclient falls back to guessing by name: look at the LIST flags too.
out["special"] = [c.find_special_folder(imapclient.imapclient.SENT),
                  c.find_special_folder(imapclient.imapclient.ARCHIVE)]
out["flags"] = sorted(f[0][-1].decode() for f in c.list_folders() if len(f[0]) > 1)
out["size"] = c.folder_status("Archive", ["SIZE"])[b"SIZE"]
c.logout()
print(json.dumps(out))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    assert!(v.contains("\"move\": true"), "{v}");
    // The client's own \Deleted message 4 is not expunged by the MOVE.
    assert!(v.contains("\"inbox\": [1, 4, 5]"), "{v}");
    assert!(v.contains("\"archive\": 2"), "{v}");
    // SPECIAL-USE by name, and STATUS=SIZE as FETCH RFC822.SIZE counts.
    assert!(
        v.contains("\"special\": [\"Sent Messages\", \"Archive\"]"),
        "{v}"
    );
    assert!(
        v.contains("\"flags\": [\"\\\\Archive\", \"\\\\Sent\"]"),
        "{v}"
    );
    assert!(v.contains("\"size\": 1663"), "{v}");
    let r = watcher.cmd("NOOP");
    let gone: Vec<&String> = r.iter().filter(|l| l.ends_with(" EXPUNGE")).collect();
    assert_eq!(gone, ["* 3 EXPUNGE", "* 2 EXPUNGE"], "{r:?}");
    assert_eq!(uids(&mut watcher), vec![1, 4, 5]);
    let files = |d: &str| std::fs::read_dir(i.path(d)).unwrap().count();
    assert_eq!(files("home/ann/Maildir/cur"), 3);
    assert_eq!(files("home/ann/Maildir/.Archive/cur"), 2);
}

#[test]
fn a_folder_written_by_dovecot_keeps_its_uids() {
    let i = Instance::new();
    let dir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    // As Dovecot 2.3.19 left it: the header's N lags the appended lines.
    std::fs::write(
        dir.join("dovecot-uidlist"),
        "3 V1795873275 N1 G704ea433fbd90a6b8078000083ecc375\n\
         1 :1700000000.M1P1.host\n\
         7 :1700000001.M1P1.host\n\
         9 :1795873275.M898106P30848.vm,S=5,W=5\n",
    )
    .unwrap();
    std::fs::write(dir.join("dovecot-keywords"), "0 $Junk\n1 foo\n").unwrap();
    std::fs::write(
        dir.join("cur/1700000000.M1P1.host:2,Sab"),
        "Subject: a\n\nx\n",
    )
    .unwrap();
    std::fs::write(dir.join("cur/1700000001.M1P1.host:2,"), "Subject: b\n\nx\n").unwrap();
    std::fs::write(dir.join("new/1795873275.M898106P30848.vm,S=5,W=5"), "hello").unwrap();
    std::fs::write(dir.join("new/1795900000.M1P1.new"), "Subject: c\n\nx\n").unwrap();
    let mut l = Live::start(&i);
    let r = l.cmd("SELECT INBOX");
    assert!(
        r.contains(&"* OK [UIDVALIDITY 1795873275] UIDs valid".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"* OK [UIDNEXT 11] Predicted next UID".to_string()),
        "{r:?}"
    );
    let r = l.cmd("FETCH 1:* (UID FLAGS)");
    assert_eq!(
        r[..4],
        [
            "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent $Junk foo))",
            "* 2 FETCH (UID 7 FLAGS (\\Recent))",
            "* 3 FETCH (UID 9 FLAGS (\\Recent))",
            "* 4 FETCH (UID 10 FLAGS (\\Recent))",
        ]
    );
    let list = std::fs::read_to_string(dir.join("dovecot-uidlist")).unwrap();
    assert!(
        list.starts_with("3 V1795873275 N11 G704ea433fbd90a6b8078000083ecc375\n"),
        "{list}"
    );
    assert!(list.ends_with("10 :1795900000.M1P1.new:2,\n"), "{list}");
}

#[test]
fn python_imaplib_fetches_binary_and_appends_a_literal8() {
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import imaplib, sys, json, base64, quopri
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
m.login("ann", "x")
out = {"binary": "BINARY" in m.capabilities}
m.select("INBOX")
typ, d = m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2] BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2])")
parts = [p[1] for p in d if isinstance(p, tuple)]
# What the server decoded is what the client would have decoded itself.
out["qp"] = parts[2] == quopri.decodestring(parts[0]).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
out["b64"] = parts[3] == base64.b64decode(parts[1])
out["size"] = d[-1].decode().endswith("BINARY.SIZE[2] %d)" % len(parts[3]))
typ, d = m.fetch("2", "(FLAGS)")
out["peek_unseen"] = "\\Seen" not in d[0].decode()
# imaplib has no literal8: the APPEND goes by hand on its socket.
data = b"Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\x00c\r\n"
m.send(b"X1 APPEND INBOX ~{%d}\r\n" % len(data))
out["go"] = m.readline().startswith(b"+")
m.send(data + b"\r\n")
line = m.readline()
while not line.startswith(b"X1 "):
    line = m.readline()
out["append"] = line.decode().strip()
typ, d = m.select("INBOX")
n = int(d[0])
typ, d = m.fetch(str(n), "(BINARY[1] BINARY.SIZE[1])")
out["nul"] = d[0][1] == b"a\x00b\x00c\r\n" and d[0][0].decode().endswith("~{7}")
typ, d = m.fetch(str(n), "(FLAGS)")
out["seen"] = "\\Seen" in d[0].decode()
typ, d = m.fetch("3", "BINARY[1]")
out["multipart"] = typ
m.logout()
print(json.dumps(out))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    for want in [
        "\"binary\": true",
        "\"qp\": true",
        "\"b64\": true",
        "\"size\": true",
        "\"peek_unseen\": true",
        "\"go\": true",
        "\"nul\": true",
        "\"seen\": true",
        "\"multipart\": \"NO\"",
    ] {
        assert!(v.contains(want), "{want}: {v}");
    }
    assert!(v.contains("\"append\": \"X1 OK [APPENDUID "), "{v}");
    // Stored as it came, NULs and all.
    let cur = i.path("home/ann/Maildir/cur");
    let found = std::fs::read_dir(cur).unwrap().flatten().any(|e| {
        std::fs::read(e.path())
            .unwrap()
            .ends_with(b"\r\n\r\na\x00b\x00c\r\n")
    });
    assert!(found);
}

#[test]
fn python_imapclient_multiappends_creates_special_use_and_finds_first_login_folders() {
    if !have_imapclient() {
        return;
    }
    let mut i = Instance::new();
    // No `[imap] folders` key: the default list.
    i.write_config("# [imap] folders: the default\n");
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import sys, json, datetime, imapclient
from imapclient import IMAPClient, SEEN
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
out = {"caps": [x.decode() for x in c.capabilities() if x in (b"MULTIAPPEND", b"BINARY", b"CREATE-SPECIAL-USE")]}
out["folders"] = sorted(f[2] for f in c.list_folders())
out["subscribed"] = sorted(f[2] for f in c.list_sub_folders())
out["sent"] = c.find_special_folder(imapclient.imapclient.SENT)
out["junk"] = c.find_special_folder(imapclient.imapclient.JUNK)
date = datetime.datetime(2026, 2, 1, 12, 0, tzinfo=datetime.timezone.utc)
r = c.multiappend("Drafts", [b"Subject: one\r\n\r\n1\r\n",
                             {"msg": b"Subject: two\r\n\r\n2\r\n", "flags": [SEEN], "date": date},
                             b"Subject: three\r\n\r\n3\r\n"])
out["multiappend"] = r[1][0].decode()
out["drafts"] = c.folder_status("Drafts", ["MESSAGES"])[b"MESSAGES"]
c.select_folder("Drafts")
f = c.fetch(c.search(["ALL"]), ["FLAGS", "INTERNALDATE"])
out["seen"] = [SEEN in f[k][b"FLAGS"] for k in sorted(f)]
out["date"] = f[2][b"INTERNALDATE"].strftime("%Y-%m-%d")
typ, d = c._imap._simple_command("CREATE", "Outbox", "(USE (\\Sent))")
out["create"] = typ
out["outbox"] = [x.decode() for x in c.list_folders(pattern="Outbox")[0][0]]
typ, d = c._imap._simple_command("CREATE", "Starred", "(USE (\\Flagged))")
out["flagged"] = [typ, c._imap.untagged_responses.get("NO", [b""])[-1].decode() if typ == "NO" else ""]
out["starred"] = c.folder_exists("Starred")
c.logout()
print(json.dumps(out))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    for want in [
        "\"caps\": [\"BINARY\", \"MULTIAPPEND\", \"CREATE-SPECIAL-USE\"]",
        "\"folders\": [\"Archive\", \"Drafts\", \"INBOX\", \"Junk\", \"Sent\", \"Trash\"]",
        "\"subscribed\": [\"Archive\", \"Drafts\", \"Junk\", \"Sent\", \"Trash\"]",
        "\"sent\": \"Sent\"",
        "\"junk\": \"Junk\"",
        "\"drafts\": 3",
        "\"seen\": [false, true, false]",
        "\"date\": \"2026-02-01\"",
        "\"create\": \"OK\"",
        "\"outbox\": [\"\\\\HasNoChildren\", \"\\\\Sent\"]",
        "\"starred\": false",
    ] {
        assert!(v.contains(want), "{want}: {v}");
    }
    assert!(v.contains("\"multiappend\": \"[APPENDUID "), "{v}");
    assert!(v.contains(" 1:3] APPEND completed\""), "{v}");
    assert!(v.contains("\"flagged\": [\"NO\""), "{v}");
    assert!(i.path("home/ann/Maildir/posthorn-folders").exists());
}

#[test]
fn python_imaplib_reads_flags_searches_copies_and_appends() {
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import imaplib, sys, json, email
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
m.login("ann", "x")
typ, data = m.select("INBOX")
n = int(data[0])
typ, data = m.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
sizes = [len(p[1]) for p in data if isinstance(p, tuple)]
subjects = [str(email.message_from_bytes(p[1])["Subject"]) for p in data if isinstance(p, tuple)]
typ, hits = m.search(None, "BODY", "zebra")
m.store("1", "+FLAGS", "(\\Flagged)")
typ, flags = m.fetch("1", "(FLAGS)")
m.create("Archive")
m.copy("1:2", "Archive")
m.append("Archive", "(\\Seen)", imaplib.Time2Internaldate(1770000000), b"Subject: appended\r\n\r\nhi\r\n")
typ, st = m.status("Archive", "(MESSAGES UIDNEXT)")
typ, lst = m.list()
m.logout()
print(json.dumps({"n": n, "sizes": sizes, "subjects": subjects, "hits": hits[0].decode(),
                  "flags": flags[0].decode(), "status": st[0].decode(),
                  "list": [x.decode() for x in lst]}))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    assert!(v.contains("\"n\": 5"), "{v}");
    assert!(v.contains("\"hits\": \"3\""), "{v}");
    assert!(v.contains("\\\\Flagged"), "{v}");
    assert!(v.contains("Archive (MESSAGES 3 UIDNEXT 4)"), "{v}");
    assert!(v.contains("IMAP4rev1 WG mtg summary and minutes"), "{v}");
    // Sizes are what RFC822.SIZE promised: the CRLF form of each file.
    for f in std::fs::read_dir(i.path("home/ann/Maildir/cur"))
        .unwrap()
        .flatten()
    {
        let b = std::fs::read(f.path()).unwrap();
        let crlf = b.len() + b.iter().filter(|&&c| c == b'\n').count();
        assert!(v.contains(&crlf.to_string()), "{crlf} in {v}");
    }
}

/// dovecot - one preauthenticated Dovecot IMAP session (Debian's
/// dovecot-imapd, run as the test user) on the Maildir at `maildir`;
/// None when Dovecot is not installed.
fn dovecot(i: &Instance, maildir: &Path, script: &str) -> Option<String> {
    let imap = Path::new("/usr/lib/dovecot/imap");
    if !imap.exists() {
        // CI installs it: there, a missing Dovecot is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "Dovecot is not installed (apt-get install dovecot-imapd)"
        );
        eprintln!(
            "skipped: Dovecot is not installed (apt-get install dovecot-imapd; CI installs it)"
        );
        return None;
    }
    let conf = i.path("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "mail_location = maildir:{}\nlog_path = {}\nssl = no\nbase_dir = {}\nstate_dir = {}\n",
            maildir.display(),
            i.path("dovecot.log").display(),
            i.path("dovecot-run").display(),
            i.path("dovecot-state").display()
        ),
    )
    .unwrap();
    // Dovecot's own directories, apart from a system Dovecot's.
    for d in ["dovecot-run", "dovecot-state"] {
        std::fs::create_dir_all(i.path(d)).unwrap();
    }
    let user = if is_root() {
        "nobody".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "user".into())
    };
    // i.cmd hands the instance to the test user; Dovecot runs as that user.
    i.cmd("imapd");
    let mut c = Command::new(imap);
    c.env_clear()
        .env("USER", &user)
        .env("HOME", i.path("home/ann"))
        .args(["-c", conf.to_str().unwrap()]);
    if let Some((u, g)) = run_ids() {
        use std::os::unix::process::CommandExt;
        c.uid(u).gid(g);
    }
    let out = run_with_stdin(c, script.replace('\n', "\r\n").as_bytes());
    let s = text(&out.stdout);
    assert!(s.contains("OK"), "dovecot: {s}{}", text(&out.stderr));
    Some(s)
}

/// flags_by_uid - `(uid, flags)` from `* n FETCH (UID u FLAGS (...))` lines.
fn flags_by_uid(s: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = s
        .lines()
        .filter(|l| l.starts_with("* ") && l.contains(" FETCH ("))
        .filter_map(|l| {
            let uid = l
                .split("UID ")
                .nth(1)?
                .split([' ', ')'])
                .next()?
                .parse()
                .ok()?;
            let f = l.split("FLAGS (").nth(1)?.split(')').next()?;
            let mut f: Vec<&str> = f
                .split(' ')
                .filter(|x| !x.is_empty() && *x != "\\Recent")
                .collect();
            f.sort();
            Some((uid, f.join(" ")))
        })
        .collect();
    v.sort();
    v
}

/// answers - the untagged SEARCH, SORT and FETCH lines of a session in
/// order (Dovecot runs pipelined commands side by side, so its tagged
/// completions need not follow their own untagged lines), then each
/// command's tagged status, sorted, for comparing two servers' answers
/// to one script.
fn answers(s: &str) -> Vec<String> {
    let mut untagged = Vec::new();
    let mut tagged = Vec::new();
    for l in s.lines() {
        let l = l.trim_end_matches('\r');
        if l.starts_with("* SEARCH") || l.starts_with("* SORT") || l.contains(" FETCH (") {
            untagged.push(l.to_string());
        } else if let Some((tag, rest)) = l.split_once(' ')
            && tag != "*"
            && !tag.is_empty()
            && (rest.starts_with("OK") || rest.starts_with("NO") || rest.starts_with("BAD"))
        {
            tagged.push(format!("{tag} {}", rest.split(' ').next().unwrap_or("")));
        }
    }
    tagged.sort();
    untagged.extend(tagged);
    untagged
}

/// Dovecot and imapd read the hard address and date cases the same way
/// (issue 13): SENT* by the day written, FROM/TO/CC/BCC on the parsed
/// addresses, ENVELOPE, and SORT by addresses and dates, over a corpus
/// written for those rules (tests/data/imapd/addresses). The two
/// servers' answers are compared, not a list of expected ones.
#[test]
fn dovecot_and_imapd_agree_on_dates_addresses_envelopes_and_sorts() {
    let i = Instance::new();
    let maildir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(s)).unwrap();
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(data().join("addresses"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for (n, p) in names.iter().enumerate() {
        let t = 1_769_947_200 + 3600 * n as u64;
        let f = maildir.join(format!("cur/{t}.A{n}P1.test:2,"));
        std::fs::copy(p, &f).unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t))
            .unwrap();
    }
    let mut script = String::from("b EXAMINE INBOX\n");
    let mut n = 0;
    let mut add = |cmd: &str| {
        n += 1;
        script.push_str(&format!("c{n} {cmd}\n"));
    };
    for day in ["23", "24", "25", "26", "27"] {
        for key in ["SENTON", "SENTBEFORE", "SENTSINCE"] {
            add(&format!("SEARCH {key} {day}-Mar-2007"));
        }
    }
    add("SEARCH SENTON 1-Jan-1970");
    for (key, what) in [
        ("FROM", "user-from@domain.org"),
        ("FROM", "realfrom"),
        ("FROM", "domain.org"),
        ("FROM", "q, r"),
        ("FROM", "route"),
        ("FROM", "public"),
        ("FROM", "john.q.public@example.com"),
        ("FROM", "pete@silly.test"),
        ("FROM", "chap"),
        ("FROM", "mary"),
        ("FROM", "comment"),
        ("TO", "groupname"),
        ("TO", "g3@d.org"),
        ("TO", "undisclosed"),
        ("TO", "a b@x.org"),
        ("TO", "\"a b\"@x.org"),
        ("TO", "a b"),
        ("TO", "ann other"),
        ("TO", "team"),
        ("TO", "zed z"),
        ("CC", "zed@x.org"),
        ("CC", "zzz"),
        ("CC", "müller"),
        ("CC", "quoted"),
        ("BCC", "hidden"),
        ("BCC", "boss"),
    ] {
        let lit = what.len();
        add(&format!("SEARCH CHARSET UTF-8 {key} {{{lit}+}}\n{what}"));
    }
    add("FETCH 1:* ENVELOPE");
    for keys in [
        "DATE",
        "REVERSE DATE",
        "FROM",
        "TO",
        "CC",
        "REVERSE CC",
        "DISPLAYFROM",
        "DISPLAYTO",
        "REVERSE DISPLAYTO",
        "CC DATE",
        "SUBJECT",
    ] {
        add(&format!("SORT ({keys}) UTF-8 ALL"));
    }
    script.push_str("z LOGOUT\n");
    let (ours, err) = session(&i, &format!("a LOGIN ann x\n{script}"));
    assert!(ours.contains("z OK"), "{ours}{err}");
    let theirs = dovecot(&i, &maildir, &script).expect("Dovecot");
    let mut a = answers(&ours);
    a.retain(|x| !x.starts_with("a "));
    let b = answers(&theirs);
    assert!(a.len() > 60, "{ours}");
    let differ: Vec<String> = a
        .iter()
        .zip(&b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(n, (x, y))| format!("answer {}:\nimapd:   {x}\nDovecot: {y}", n + 1))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(a.len(), b.len(), "{ours}\n{theirs}");
}

#[test]
fn dovecot_and_imapd_share_a_maildir_both_ways() {
    let i = Instance::new();
    seed(&i);
    let maildir = i.path("home/ann/Maildir");
    // Posthorn first: flags, a keyword, an append, a folder.
    let (out, _) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc STORE 1 +FLAGS (\\Flagged $Work)\n\
         d STORE 2 +FLAGS (\\Seen)\ne APPEND INBOX (\\Draft) {14}\nSubject: p\n\n\n\
         f CREATE Lists.rust\ng UID FETCH 1:* (FLAGS)\nh LOGOUT\n",
    );
    let ours = flags_by_uid(&out);
    assert_eq!(ours.len(), 6, "{out}");
    let Some(theirs) = dovecot(
        &i,
        &maildir,
        "a SELECT INBOX\nb UID FETCH 1:* (FLAGS)\nc LIST \"\" *\nd LOGOUT\n",
    ) else {
        return;
    };
    assert_eq!(flags_by_uid(&theirs), ours, "{theirs}");
    assert!(theirs.contains("Lists.rust"), "{theirs}");
    let validity = |s: &str| {
        s.split("[UIDVALIDITY ")
            .nth(1)
            .map(|x| x.split(']').next().unwrap().to_string())
    };
    assert_eq!(validity(&theirs), validity(&out));
    // Then Dovecot: flags, a keyword, an expunge, an append.
    // (Two sessions: Dovecot 2.3.19 itself expunges nothing in a session
    // that has just added a new keyword, with or without us.)
    dovecot(
        &i,
        &maildir,
        "a SELECT INBOX\nb UID STORE 3 +FLAGS (\\Answered NonJunk)\nc LOGOUT\n",
    );
    let changed = dovecot(
        &i,
        &maildir,
        "a SELECT INBOX\nc UID STORE 4 +FLAGS (\\Deleted)\n\
         d EXPUNGE\ne APPEND INBOX (\\Seen) {14}\nSubject: d\n\n\nf LOGOUT\n",
    )
    .unwrap_or_default();
    let Some(theirs) = dovecot(
        &i,
        &maildir,
        "a SELECT INBOX\nb UID FETCH 1:* (FLAGS)\nc LOGOUT\n",
    ) else {
        return;
    };
    let (out, _) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc UID FETCH 1:* (FLAGS)\nd LOGOUT\n",
    );
    let ours = flags_by_uid(&out);
    assert_eq!(ours, flags_by_uid(&theirs), "{out}\n{theirs}");
    assert!(
        ours.iter()
            .any(|(u, f)| *u == 3 && f.contains("NonJunk") && f.contains("\\Answered")),
        "{ours:?}"
    );
    assert!(
        !ours.iter().any(|(u, _)| *u == 4),
        "{ours:?}\n{changed}\n{}",
        std::fs::read_to_string(i.path("dovecot.log")).unwrap_or_default()
    );
    assert_eq!(ours.last().map(|x| x.0), Some(7), "{ours:?}");
}

#[test]
fn idle_deliveries_appended_to_the_uidlist_are_read_by_dovecot_and_a_new_session() {
    use std::os::unix::fs::MetadataExt;
    let i = Instance::new();
    seed(&i);
    let maildir = i.path("home/ann/Maildir");
    let list_ino = || {
        std::fs::metadata(maildir.join("dovecot-uidlist"))
            .unwrap()
            .ino()
    };
    let mut a = Live::start(&i);
    a.cmd("SELECT INBOX");
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    // The first look in an IDLE reads the whole folder; the next ones
    // read only the deliveries and append their UIDs to the list.
    deliver(&i, "first");
    assert_eq!(
        a.until(|l| l.ends_with(" EXISTS")).last().unwrap(),
        "* 6 EXISTS"
    );
    let ino = list_ino();
    for (n, subject) in [(7, "second"), (8, "third")] {
        deliver(&i, subject);
        let r = a.until(|l| l.ends_with(" EXISTS"));
        assert_eq!(r.last().unwrap(), &format!("* {n} EXISTS"), "{r:?}");
    }
    assert_eq!(list_ino(), ino, "the list was appended to, not rewritten");
    a.send("DONE");
    let r = a.until(|l| l.starts_with("i1 "));
    assert_eq!(r.last().unwrap(), "i1 OK IDLE terminated", "{r:?}");
    assert_eq!(uids(&mut a), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let subjects = a.cmd("UID FETCH 6:8 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let all = subjects.join("\n");
    let at = |s: &str| all.find(s).unwrap_or(usize::MAX);
    assert!(
        at("Subject: first") < at("Subject: second")
            && at("Subject: second") < at("Subject: third")
            && at("Subject: third") < all.len(),
        "{all}"
    );
    // A new session, and Dovecot, read the same UIDs from the list.
    let (out, _) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc UID FETCH 1:* (FLAGS)\nd LOGOUT\n",
    );
    let ours = flags_by_uid(&out);
    assert_eq!(
        ours.iter().map(|x| x.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8],
        "{out}"
    );
    assert!(out.contains("[UIDNEXT 9]"), "{out}");
    let Some(theirs) = dovecot(
        &i,
        &maildir,
        "a SELECT INBOX\nb UID FETCH 1:* (FLAGS)\nc APPEND INBOX {14}\nSubject: d\n\n\nd LOGOUT\n",
    ) else {
        return;
    };
    assert_eq!(flags_by_uid(&theirs), ours, "{theirs}");
    assert!(theirs.contains("[UIDNEXT 9]"), "{theirs}");
    assert!(
        theirs.contains("[APPENDUID ") && theirs.contains(" 9]"),
        "{theirs}"
    );
    let r = a.cmd("NOOP");
    assert!(r.iter().any(|l| l == "* 9 EXISTS"), "{r:?}");
    assert_eq!(uids(&mut a), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn python_imapclient_parses_structures_and_manages_folders() {
    if !have_imapclient() {
        return;
    }
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import sys, json
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
info = c.select_folder("INBOX")
data = c.fetch(c.search(["ALL"]), ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE", "FLAGS"])
out = {"exists": info[b"EXISTS"], "uidnext": info[b"UIDNEXT"]}
out["subjects"] = [d[b"ENVELOPE"].subject.decode() if d[b"ENVELOPE"].subject else None for u, d in sorted(data.items())]
out["multipart"] = [d[b"BODYSTRUCTURE"].is_multipart for u, d in sorted(data.items())]
env = data[1][b"ENVELOPE"]
out["from"] = [a.mailbox.decode() + "@" + a.host.decode() for a in env.from_]
out["cc"] = len(env.cc)
out["search"] = c.search(["OR", "FROM", "bob", "SUBJECT", "forwarded"])
out["gmail_style"] = c.search(["TEXT", "zebra", "NOT", "DELETED"])
c.add_flags([1, 2], [b"\\Flagged", b"$Work"])
out["flags"] = {str(k): sorted(x.decode() for x in v) for k, v in c.get_flags([1, 2]).items()}
c.create_folder("Projects.2026")
c.rename_folder("Projects", "Work")
c.copy([3, 4], "Work.2026")
c.append("Work.2026", b"Subject: via imapclient\r\n\r\nbody\r\n", flags=[b"\\Seen"])
out["status"] = {k.decode(): v for k, v in c.folder_status("Work.2026", ["MESSAGES", "UNSEEN", "UIDNEXT"]).items()}
out["folders"] = sorted(f[2] for f in c.list_folders())
c.subscribe_folder("Work.2026")
out["subscribed"] = sorted(f[2] for f in c.list_sub_folders())
c.delete_messages([5])
out["expunged"] = str(c.expunge())
c.delete_folder("Work.2026")
out["after_delete"] = sorted(f[2] for f in c.list_folders())
c.logout()
print(json.dumps(out))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    assert!(v.contains("\"exists\": 5, \"uidnext\": 6"), "{v}");
    assert!(
        v.contains("\"multipart\": [false, true, true, true, true]"),
        "{v}"
    );
    assert!(
        v.contains("\"from\": [\"gray@cac.washington.edu\"], \"cc\": 2"),
        "{v}"
    );
    assert!(v.contains("\"search\": [3, 4]"), "{v}");
    assert!(v.contains("\"gmail_style\": [3]"), "{v}");
    assert!(
        v.contains("\"1\": [\"$Work\", \"\\\\Flagged\", \"\\\\Recent\"]"),
        "{v}"
    );
    assert!(
        v.contains("\"MESSAGES\": 3, \"UNSEEN\": 2, \"UIDNEXT\": 4"),
        "{v}"
    );
    assert!(
        v.contains("\"folders\": [\"INBOX\", \"Work\", \"Work.2026\"]"),
        "{v}"
    );
    assert!(v.contains("\"subscribed\": [\"Work.2026\"]"), "{v}");
    assert!(v.contains("\"after_delete\": [\"INBOX\"]"), "{v}");
}

/// tls_instance - the corpus and a self-signed certificate in [tls].
fn tls_instance() -> Option<Instance> {
    let mut i = Instance::new();
    seed(&i);
    if !make_cert(&i) {
        return None;
    }
    i.write_config("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    Some(i)
}

#[test]
fn starttls_with_imaplib_and_no_plaintext_after_starttls() {
    let Some(i) = tls_instance() else {
        return;
    };
    // Pipelined plaintext after STARTTLS must not be answered (CVE-2011-0411).
    let (out, err) = session(&i, "a CAPABILITY\nb STARTTLS\nc LOGIN ann x\n");
    assert!(out.contains(" STARTTLS"), "{out}");
    assert!(out.ends_with("b OK Begin TLS negotiation now\r\n"), "{out}");
    assert!(err.contains("plaintext pipelined after STARTTLS"), "{err}");
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let got = python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
before = m.capabilities
m.starttls(ssl_context=ctx)
after = m.capabilities
assert "STARTTLS" in before and "STARTTLS" not in after, (before, after)
m.login("ann", "x")
typ, data = m.select("INBOX")
print(data[0].decode(), m.sock.version())
m.logout()
"#,
        &[&l.port.to_string(), &i.path("cert.pem").to_string_lossy()],
    );
    assert!(got.starts_with("5 TLSv1."), "{got}");
}

#[test]
fn implicit_tls_with_imaplib_imap4_ssl() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "imapd", &["--tls"]) else {
        return;
    };
    let got = python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), timeout=20, ssl_context=ctx)
assert "STARTTLS" not in m.capabilities, m.capabilities
m.login("ann", "x")
print(m.select("INBOX", readonly=True)[1][0].decode())
m.logout()
"#,
        &[&l.port.to_string(), &i.path("cert.pem").to_string_lossy()],
    );
    assert_eq!(got, "5\n");
}

#[test]
fn idle_under_implicit_tls_sees_a_new_file_and_reads_done() {
    if !have_imapclient() {
        return;
    }
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "imapd", &["--tls"]) else {
        return;
    };
    // The poll(2) on fd 0 under TLS: a record must wake the session and
    // DONE must be read through rustls.
    let got = python(
        r#"
import os, ssl, sys, time
from imapclient import IMAPClient
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=True, ssl_context=ctx, timeout=20)
c.login("ann", "x")
c.select_folder("INBOX")
c.idle()
tmp = os.path.join(sys.argv[3], "tmp", "1800000000.M1P1.tls")
with open(tmp, "w") as f:
    f.write("Subject: under TLS\n\nhi\n")
os.rename(tmp, os.path.join(sys.argv[3], "new", "1800000000.M1P1.tls"))
t, seen = time.time(), None
while seen is None and time.time() < t + 20:
    for r in c.idle_check(timeout=1):
        if r[1] == b"EXISTS":
            seen = r[0]
took = time.time() - t
text, _ = c.idle_done()
print(seen, text.decode(), took < 5)
c.logout()
"#,
        &[
            &l.port.to_string(),
            &i.path("cert.pem").to_string_lossy(),
            &i.path("home/ann/Maildir").to_string_lossy(),
        ],
    );
    assert_eq!(got, "6 IDLE terminated True\n");
}

#[test]
fn no_passwords_in_plaintext_from_the_network() {
    let i = Instance::new();
    // A TCP client that is not on loopback: the harness's pipe counts as
    // local, so the address comes from tcpserver's variable.
    let mut c = i.cmd("imapd");
    c.env("TCPREMOTEIP", "192.0.2.7")
        .env("TCPREMOTEPORT", "4711");
    let out = run_with_stdin(
        c,
        b"a CAPABILITY\r\nb LOGIN ann x\r\nc AUTHENTICATE PLAIN AGFubgB4\r\nd LOGOUT\r\n",
    );
    let s = text(&out.stdout);
    assert!(s.contains("LOGINDISABLED"), "{s}");
    assert!(!s.contains("AUTH=PLAIN"), "{s}");
    assert!(s.contains("b NO [PRIVACYREQUIRED]"), "{s}");
    assert!(s.contains("c NO [PRIVACYREQUIRED]"), "{s}");
    assert!(!s.contains("Logged in"), "{s}");
}

/// many - `n` small messages in ann's INBOX.
fn many(i: &Instance, n: usize) {
    let dir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    for k in 0..n {
        std::fs::write(
            dir.join(format!("cur/{}.M{k}P1.test:2,", 1_769_947_200 + k)),
            format!("Subject: m{k}\n\nbody {k}\n"),
        )
        .unwrap();
    }
}

/// check_consistent - a fresh session selects INBOX and lists every file
/// in it once, with unique rising UIDs below UIDNEXT; returns the UIDs.
fn check_consistent(i: &Instance, what: &str) -> Vec<u32> {
    let (out, err) = session(
        i,
        "a LOGIN ann x\nb SELECT INBOX\nc UID FETCH 1:* (FLAGS)\nd LOGOUT\n",
    );
    assert!(out.contains("b OK [READ-WRITE]"), "{what}: {out}{err}");
    let uids: Vec<u32> = flags_by_uid(&out).into_iter().map(|x| x.0).collect();
    let next: u32 = out
        .split("[UIDNEXT ")
        .nth(1)
        .and_then(|x| x.split(']').next())
        .and_then(|x| x.parse().ok())
        .unwrap();
    let mut sorted = uids.clone();
    sorted.dedup();
    assert_eq!(sorted, uids, "{what}: UIDs unique and rising");
    assert!(
        uids.last().is_none_or(|&u| u < next),
        "{what}: UIDNEXT {next} above {uids:?}"
    );
    let files = ["new", "cur"]
        .iter()
        .map(|s| {
            std::fs::read_dir(i.path("home/ann/Maildir").join(s))
                .unwrap()
                .count()
        })
        .sum::<usize>();
    assert_eq!(files, uids.len(), "{what}: every file has one UID");
    uids
}

#[test]
fn kill_9_during_append_store_copy_and_expunge_leaves_a_consistent_folder() {
    let i = Instance::new();
    many(&i, 300);
    let before = check_consistent(&i, "seeded");
    assert_eq!(before.len(), 300);
    let big = "x".repeat(2 * 1024 * 1024);
    let scripts = [
        (
            "append",
            format!(
                "a APPEND INBOX {{{}}}\r\nSubject: big\r\n\r\n",
                big.len() + 17
            ),
        ),
        (
            "store",
            "a STORE 1:* +FLAGS (\\Seen $Killed)\r\n".to_string(),
        ),
        ("copy", "a CREATE Copy\r\nb COPY 1:* Copy\r\n".to_string()),
        (
            "expunge",
            "a STORE 1:150 +FLAGS.SILENT (\\Deleted)\r\nb EXPUNGE\r\n".to_string(),
        ),
    ];
    let mut last = before;
    for (what, script) in &scripts {
        for delay_ms in [0u64, 2, 10, 40] {
            let mut c = i.cmd("imapd");
            c.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = c.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            let _ = input.write_all(b"l LOGIN ann x\r\ns SELECT INBOX\r\n");
            let _ = input.write_all(script.as_bytes());
            if *what == "append" {
                let _ = input.write_all(&big.as_bytes()[..big.len() / 2]);
            }
            let _ = input.flush();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let _ = child.wait();
            drop(input);
            let now = check_consistent(&i, &format!("{what} killed after {delay_ms} ms"));
            // Nothing acknowledged is lost, no UID comes back.
            if *what != "expunge" {
                assert!(
                    last.iter().all(|u| now.contains(u)),
                    "{what}: a message was lost"
                );
            }
            assert!(
                now.iter()
                    .all(|u| last.contains(u) || *u > *last.iter().max().unwrap_or(&0))
            );
            last = now;
        }
    }
    // A lock a killed session held names a dead process: the next one
    // that needs it breaks it at once (a new keyword takes the uidlist
    // lock), and leaves none behind.
    let t = std::time::Instant::now();
    let (out, err) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc APPEND INBOX ($AfterTheKills) {8+}\nSubject:\nz LOGOUT\n",
    );
    assert!(out.contains("c OK"), "{out}{err}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "waited out a dead lock"
    );
    assert!(!i.path("home/ann/Maildir/dovecot-uidlist.lock").exists());
}

#[test]
fn kill_9_during_move_loses_no_message() {
    let i = Instance::new();
    many(&i, 300);
    let bodies = |d: &str| -> Vec<String> {
        std::fs::read_dir(i.path(d))
            .map(|rd| {
                rd.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, _) = session(&i, "a LOGIN ann x\nb CREATE Moved\nc LOGOUT\n");
    for delay_ms in [0u64, 2, 10, 40, 200] {
        let mut c = i.cmd("imapd");
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(b"l LOGIN ann x\r\ns SELECT INBOX\r\nm MOVE 1:60 Moved\r\n");
        let _ = input.flush();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        drop(input);
        check_consistent(&i, &format!("move killed after {delay_ms} ms"));
        // Every message is in one folder or both (a duplicate is
        // tolerated, a loss is not).
        let mut all = bodies("home/ann/Maildir/cur");
        all.extend(bodies("home/ann/Maildir/new"));
        all.extend(bodies("home/ann/Maildir/.Moved/cur"));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 300, "after {delay_ms} ms");
    }
    assert!(!i.path("home/ann/Maildir/dovecot-uidlist.lock").exists());
}

/// snapshot - every message file under `dir` (path and flags), sorted.
fn snapshot(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .parent()
                .and_then(|x| x.file_name())
                .is_some_and(|n| n == "cur" || n == "new")
            {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort();
    v
}

#[test]
fn mbsync_two_way_sync_of_several_folders_then_nothing_to_do() {
    if Command::new("mbsync").arg("-v").output().is_err() {
        eprintln!("skipped: mbsync is not installed (apt-get install isync; CI installs it)");
        return;
    }
    let i = Instance::new();
    seed(&i);
    let far = i.path("home/ann/Maildir");
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(far.join(".Lists.rust").join(s)).unwrap();
    }
    std::fs::write(
        far.join(".Lists.rust/cur/1770000100.M1P1.test:2,S"),
        "Subject: list\n\nlist body\n",
    )
    .unwrap();
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let near = i.path("near");
    std::fs::create_dir_all(&near).unwrap();
    let rc = i.path("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser ann\nPass x\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore far\nAccount t\n\n\
             MaildirStore near\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            l.port,
            near.display(),
            near.display()
        ),
    )
    .unwrap();
    let mbsync = || {
        let out = Command::new("mbsync")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mbsync: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    mbsync();
    assert_eq!(snapshot(&near.join("INBOX")).len(), 5);
    assert_eq!(snapshot(&near.join("Lists/rust")).len(), 1);
    // Changes on both sides: a new folder and message near, flags and a
    // deletion far (through imapd), then sync.
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(near.join("Sent").join(s)).unwrap();
    }
    std::fs::write(
        near.join("Sent/cur/1795000000.1_1.h:2,S"),
        "Subject: sent\nMessage-ID: <s@x>\n\nsent\n",
    )
    .unwrap();
    std::fs::write(
        near.join("INBOX/cur/1795000001.1_1.h:2,F"),
        "Subject: near\nMessage-ID: <n@x>\n\nnear\n",
    )
    .unwrap();
    let (out, _) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc STORE 1 +FLAGS (\\Seen)\nd STORE 2 +FLAGS (\\Deleted)\ne EXPUNGE\nf LOGOUT\n",
    );
    assert!(out.contains("* 2 EXPUNGE"), "{out}");
    std::thread::sleep(Duration::from_millis(1100)); // Maildir mtimes have seconds
    mbsync();
    assert_eq!(
        snapshot(&far.join("cur")).len() + snapshot(&far.join("new")).len(),
        5
    );
    assert_eq!(snapshot(&far.join(".Sent")).len(), 1);
    assert_eq!(snapshot(&near.join("INBOX")).len(), 5);
    assert!(
        snapshot(&near.join("INBOX"))
            .iter()
            .any(|p| p.ends_with(",S") || p.contains(":2,S"))
    );
    // The second run has nothing to do on either side.
    let (before_far, before_near) = (snapshot(&far), snapshot(&near));
    std::thread::sleep(Duration::from_millis(1100));
    mbsync();
    assert_eq!(snapshot(&far), before_far);
    assert_eq!(snapshot(&near), before_near);
}

#[test]
fn a_replaced_uidlist_ends_the_session_with_bye() {
    let i = Instance::new();
    seed(&i);
    let mut l = Live::start(&i);
    l.cmd("SELECT INBOX");
    // Another program recreates the folder's UIDs: what the client
    // cached is void, and it must hear so rather than get wrong UIDs.
    let p = i.path("home/ann/Maildir/dovecot-uidlist");
    let text = std::fs::read_to_string(&p).unwrap();
    let rest = text.split_once('\n').unwrap().1;
    std::fs::write(&p, format!("3 V12345 N9 G0\n{rest}")).unwrap();
    l.n += 1;
    write!(l.input, "t{} NOOP\r\n", l.n).unwrap();
    l.input.flush().unwrap();
    let mut got = String::new();
    l.output.read_to_string(&mut got).unwrap();
    assert_eq!(got, "* BYE [UNAVAILABLE] the mailbox was replaced\r\n");
}

/// One session's view in the model test: UIDs by sequence number.
struct View {
    live: Live,
    uids: Vec<u32>,
}

/// fetch_lines - `(seq, uid, flags)` of `* n FETCH (... UID u ... FLAGS (...))` lines.
fn fetch_lines(lines: &[String]) -> Vec<(usize, u32, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("* ")?;
            let (n, rest) = rest.split_once(" FETCH (")?;
            let uid = rest
                .split("UID ")
                .nth(1)
                .and_then(|x| x.split([' ', ')']).next()?.parse().ok())
                .unwrap_or(0);
            let f = rest.split("FLAGS (").nth(1)?.split(')').next()?;
            let mut f: Vec<&str> = f
                .split(' ')
                .filter(|x| !x.is_empty() && *x != "\\Recent")
                .collect();
            f.sort();
            Some((n.parse().ok()?, uid, f.join(" ")))
        })
        .collect()
}

impl View {
    /// apply - the untagged EXPUNGE and EXISTS of a response, in order.
    fn apply(&mut self, lines: &[String]) -> Option<usize> {
        let mut exists = None;
        for l in lines {
            if let Some(n) = l
                .strip_prefix("* ")
                .and_then(|x| x.strip_suffix(" EXPUNGE"))
            {
                let n: usize = n.parse().unwrap();
                assert!(
                    n >= 1 && n <= self.uids.len(),
                    "EXPUNGE {n} of {}",
                    self.uids.len()
                );
                self.uids.remove(n - 1);
            }
            if let Some(n) = l.strip_prefix("* ").and_then(|x| x.strip_suffix(" EXISTS")) {
                exists = Some(n.parse().unwrap());
            }
        }
        exists
    }

    /// check - NOOP, then FETCH 1:*: the view after the untagged replies
    /// must be what the server lists, new UIDs above all known ones, and
    /// every flag as the model says.
    fn check(&mut self, model: &mut std::collections::BTreeMap<u32, String>, step: usize) {
        let r = self.live.cmd("NOOP");
        let exists = self.apply(&r);
        let r = self.live.cmd("FETCH 1:* (UID FLAGS)");
        let got = fetch_lines(&r);
        let uids: Vec<u32> = got.iter().map(|x| x.1).collect();
        assert_eq!(
            &uids[..self.uids.len().min(uids.len())],
            &self.uids[..],
            "step {step}: {r:?}"
        );
        if let Some(e) = exists {
            assert_eq!(e, uids.len(), "step {step}: EXISTS");
        } else {
            assert_eq!(
                self.uids.len(),
                uids.len(),
                "step {step}: no EXISTS but {r:?}"
            );
        }
        let max = self.uids.last().copied().unwrap_or(0);
        assert!(
            uids[self.uids.len()..].iter().all(|&u| u > max),
            "step {step}"
        );
        for (n, (seq, uid, flags)) in got.iter().enumerate() {
            assert_eq!(*seq, n + 1);
            let want = model.entry(*uid).or_default();
            assert_eq!(flags, want, "step {step}: flags of UID {uid}");
        }
        self.uids = uids;
    }
}

#[test]
fn three_sessions_and_deliveries_agree_with_a_model_at_every_step() {
    for seed in [12345, 7, 2026] {
        model_run(seed, 100);
    }
}

/// model_run - `steps` random deliveries, flag changes, expunges and
/// NOOPs by three sessions, each session's view checked after each.
fn model_run(random: u64, steps: usize) {
    let i = Instance::new();
    seed(&i);
    let mut model: std::collections::BTreeMap<u32, String> =
        (1..=5).map(|u| (u, String::new())).collect();
    let mut views: Vec<View> = (0..3)
        .map(|_| {
            let mut live = Live::start(&i);
            live.cmd("SELECT INBOX");
            View {
                live,
                uids: vec![1, 2, 3, 4, 5],
            }
        })
        .collect();
    let mut seed_n = random;
    let mut rnd = |m: usize| {
        seed_n = seed_n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed_n >> 33) as usize) % m.max(1)
    };
    let mut gone: Vec<u32> = Vec::new();
    for step in 0..steps {
        let who = rnd(3);
        match rnd(5) {
            0 => deliver(&i, &format!("step {step}")),
            1 | 2 => {
                // A flag change by number, through the session's own view.
                let v = &mut views[who];
                v.check(&mut model, step);
                if v.uids.is_empty() {
                    continue;
                }
                let k = rnd(v.uids.len());
                let flag = ["\\Seen", "\\Flagged", "\\Answered", "$Label"][rnd(4)];
                let add = rnd(2) == 0;
                let r = v.live.cmd(&format!(
                    "STORE {} {}FLAGS ({flag})",
                    k + 1,
                    if add { "+" } else { "-" }
                ));
                let uid = v.uids[k];
                let mut f: Vec<String> = model[&uid]
                    .split(' ')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect();
                f.retain(|x| x != flag);
                if add {
                    f.push(flag.to_string());
                }
                f.sort();
                model.insert(uid, f.join(" "));
                let got = fetch_lines(&r);
                assert_eq!(got.len(), 1, "step {step}: {r:?}");
                assert_eq!(got[0].2, model[&uid], "step {step}: STORE reply");
            }
            3 => {
                // An expunge of one message.
                let v = &mut views[who];
                v.check(&mut model, step);
                if v.uids.is_empty() {
                    continue;
                }
                let k = rnd(v.uids.len());
                let uid = v.uids[k];
                v.live
                    .cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
                let r = v.live.cmd(&format!("UID EXPUNGE {uid}"));
                v.apply(&r);
                assert!(!v.uids.contains(&uid), "step {step}: {r:?}");
                model.remove(&uid);
                gone.push(uid);
            }
            _ => views[who].check(&mut model, step),
        }
    }
    for v in &mut views {
        v.check(&mut model, 999);
        assert!(
            v.uids.iter().all(|u| !gone.contains(u)),
            "an expunged UID came back"
        );
    }
    let (a, b, c) = (&views[0].uids, &views[1].uids, &views[2].uids);
    assert!(a == b && b == c);
}

#[test]
fn mutt_in_tmux_reads_flags_deletes_and_moves() {
    // (tmux -v would mean verbose, and leave log files behind.)
    for (tool, version) in [("mutt", "-v"), ("tmux", "-V")] {
        if Command::new(tool).arg(version).output().is_err() {
            eprintln!(
                "skipped: {tool} is not installed (apt-get install mutt tmux; CI installs them)"
            );
            return;
        }
    }
    let i = Instance::new();
    let dir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    for n in 1..=4 {
        std::fs::write(
            dir.join(format!("cur/17700000{n}.M{n}P1.t:2,")),
            format!("From: s{n}@x.org\nTo: ann@mail.test\nSubject: subject number {n}\nDate: Tue, 1 Feb 2026 1{n}:00:00 +0000\nMessage-ID: <{n}@x>\n\nbody {n}\n"),
        )
        .unwrap();
    }
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let rc = i.path("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set folder=\"imap://ann@127.0.0.1:{}/\"\nset imap_pass=\"x\"\nset spoolfile=\"+INBOX\"\n\
             set ssl_starttls=no\nset ssl_force_tls=no\nset delete=yes\nset quit=yes\n\
             set confirmappend=no\nset confirmcreate=no\nset move=no\nset mark_old=no\nset sort=date\n",
            l.port
        ),
    )
    .unwrap();
    let sock = format!("posthorn-mutt-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &sock])
            .args(args)
            .output()
            .unwrap()
    };
    let screen = || text(&tmux(&["capture-pane", "-p", "-t", "m"]).stdout);
    let cmd = format!(
        "env TERM=xterm HOME={} mutt -n -F {}",
        i.root.display(),
        rc.display()
    );
    assert!(
        tmux(&[
            "new-session",
            "-d",
            "-s",
            "m",
            "-x",
            "120",
            "-y",
            "30",
            &cmd
        ])
        .status
        .success()
    );
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .output();
        }
    }
    let _kill = Kill(sock.clone());
    assert!(
        wait_for(Duration::from_secs(20), || screen()
            .contains("subject number 4")),
        "{}",
        screen()
    );
    // Read 1, flag 2 (the cursor moves on to 3), delete 3, save 4 to a
    // new folder (which deletes it here), sync, quit.
    for keys in [
        &["Enter"][..],
        &["q"],
        &["j"],
        &["F"],
        &["d"],
        &["s"],
        &["C-u"],
        &["=Archive", "Enter"],
        &["$"],
        &["q"],
    ] {
        tmux(&[&["send-keys", "-t", "m"][..], keys].concat());
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(
        wait_for(Duration::from_secs(10), || !tmux(&[
            "has-session",
            "-t",
            "m"
        ])
        .status
        .success()),
        "mutt did not quit: {}",
        screen()
    );
    let (out, _) = session(
        &i,
        "a LOGIN ann x\nb SELECT INBOX\nc UID FETCH 1:* (FLAGS)\nd SELECT Archive\ne FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\nf LOGOUT\n",
    );
    let inbox: Vec<(u32, String)> = flags_by_uid(out.split("d SELECT").next().unwrap());
    assert_eq!(
        inbox,
        [(1, "\\Seen".to_string()), (2, "\\Flagged".to_string())],
        "{out}"
    );
    assert!(out.contains("Subject: subject number 4"), "{out}");
    assert!(out.contains("* 1 EXISTS"), "{out}");
}

/// proc_uids - real, effective, saved and fs uid of a process.
fn proc_uids(pid: u32) -> String {
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
    let mut i = Instance::new();
    let homes = tempfile::Builder::new()
        .prefix("posthorn-homes")
        .tempdir()
        .unwrap();
    chmod(homes.path(), 0o755);
    let name = format!("phimap{}", std::process::id() % 100000);
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
    let mut d = i.cmd_root("deliver");
    d.arg(&name);
    let out = run_with_stdin(d, b"Subject: for a system user\n\nhello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut l = Live::spawn(i.cmd_root("imapd"));
    let pid = l.child.id();
    // Before login: the process started is the password check (root),
    // its one child the pre-login process (login_user, no way back).
    assert_eq!(proc_uids(pid), "0 0 0 0", "the password check");
    let front = proc_children(pid);
    assert_eq!(front.len(), 1, "{front:?}");
    assert_eq!(
        proc_uids(front[0]),
        "65534 65534 65534 65534",
        "before login"
    );
    let r = l.cmd(&format!("LOGIN {name} S3cret-pw"));
    assert!(r.last().unwrap().contains("OK"), "{r:?}");
    assert_eq!(
        proc_uids(pid),
        format!("{uid} {uid} {uid} {uid}"),
        "the owner, for good"
    );
    let r = l.cmd("SELECT INBOX");
    assert!(r.contains(&"* 1 EXISTS".to_string()), "{r:?}");
    l.cmd("CREATE Sent");
    use std::os::unix::fs::MetadataExt;
    for f in ["Maildir/dovecot-uidlist", "Maildir/.Sent/cur"] {
        assert_eq!(std::fs::metadata(home.join(f)).unwrap().uid(), uid, "{f}");
    }
}

/// proc_children - the processes whose parent is `pid`.
fn proc_children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("PPid:")
                        .is_some_and(|v| v.trim() == pid.to_string())
                })
            })
        })
        .collect()
}

/// hwm_mib - a process's peak RSS in MiB.
fn hwm_mib(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[test]
fn fetch_of_a_big_mailbox_streams_rather_than_holds_it() {
    let i = Instance::new();
    let dir = i.path("home/ann/Maildir");
    for s in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    let line = format!("{}\n", "x".repeat(99));
    let body = line.repeat(10 * 1024); // 1 MB
    for k in 0..48 {
        std::fs::write(
            dir.join(format!("cur/{}.M{k}P1.t:2,S", 1_770_000_000 + k)),
            format!("Subject: big {k}\n\n{body}"),
        )
        .unwrap();
    }
    let mut l = Live::start(&i);
    l.cmd("SELECT INBOX");
    // The Live reader takes the replies as they come; the server must
    // not have built them all up first.
    let r = l.cmd("FETCH 1:* BODY.PEEK[]");
    assert_eq!(r.len(), 49, "48 messages and the tagged reply");
    let mib = hwm_mib(l.child.id());
    assert!(mib < 24, "peak RSS {mib} MiB for 48 MB of messages");
}

/// openssl s_client completes STARTTLS and the session goes on under TLS.
#[test]
fn openssl_s_client_starttls_imap() {
    let Some(i) = tls_instance() else {
        return;
    };
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    // One command at a time, each answered by its tagged line.
    let o = s_client(
        l.port,
        "imap",
        &[
            ("a LOGIN ann x", "a "),
            ("b SELECT INBOX", "b "),
            ("c LOGOUT", "c "),
        ],
    );
    assert!(
        o.contains("a OK") && o.contains("* 5 EXISTS") && o.contains("c OK"),
        "{o}"
    );
}

/// COMPRESS=DEFLATE (RFC 4978) with Python's zlib as the client's side,
/// on a plain connection and under implicit TLS: commands and replies
/// compressed both ways, a large FETCH inflates to the messages as stored,
/// a second COMPRESS is refused, and IDLE still wakes on new mail.
#[test]
fn compress_deflate_with_python_zlib_plain_and_under_tls() {
    let Some(i) = tls_instance() else {
        return;
    };
    let stored: usize = std::fs::read_dir(i.path("home/ann/Maildir/cur"))
        .unwrap()
        .flatten()
        .count();
    for args in [&[][..], &["--tls"][..]] {
        let Some(l) = Launcher::start(&i, "imapd", args) else {
            return;
        };
        let got = python(
            r#"
import os, socket, ssl, sys, time, zlib
port, tls, cafile, newdir = int(sys.argv[1]), sys.argv[2] == "tls", sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), 20)
if tls:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    s = ctx.wrap_socket(s)
buf = b""
def raw_line():
    global buf
    while b"\r\n" not in buf:
        buf += s.recv(65536)
    l, buf = buf.split(b"\r\n", 1)
    return l
raw_line()
s.sendall(b"a LOGIN ann x\r\n")
while not raw_line().startswith(b"a "):
    pass
s.sendall(b"b COMPRESS DEFLATE\r\n")
l = raw_line()
assert l.startswith(b"b OK"), l
assert buf == b"", buf
tx, rx = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
plain = b""
def send(b):
    s.sendall(tx.compress(b) + tx.flush(zlib.Z_SYNC_FLUSH))
def until(tag):
    global plain
    lines = []
    while True:
        while b"\r\n" not in plain:
            plain += rx.decompress(s.recv(65536))
        l, plain = plain.split(b"\r\n", 1)
        lines.append(l)
        # A literal's octets come whole after its {n} line.
        if l.endswith(b"}") and b"{" in l:
            n = int(l[l.rindex(b"{") + 1:-1])
            while len(plain) < n:
                plain += rx.decompress(s.recv(65536))
            lines.append(plain[:n])
            plain = plain[n:]
        if l.startswith(tag + b" ") or l.startswith(b"+ "):
            return lines
r = (send(b"c SELECT INBOX\r\n"), until(b"c"))[1]
exists = [x for x in r if x.endswith(b" EXISTS")][0]
r = (send(b"d COMPRESS DEFLATE\r\n"), until(b"d"))[1]
assert r[-1].startswith(b"d NO [COMPRESSIONACTIVE]"), r
r = (send(b"e FETCH 1:* (UID BODY.PEEK[])\r\n"), until(b"e"))[1]
assert r[-1].startswith(b"e OK"), r[-1]
print(exists.decode(), "fetched", sum(1 for x in r if b"FETCH (UID" in x))
r = (send(b"f IDLE\r\n"), until(b"f"))[1]
assert r[-1].startswith(b"+ "), r
name = "%d.M%dP%d.idle-test" % (time.time(), time.time_ns() % 1000000, os.getpid())
with open(os.path.join(newdir, "..", "tmp", name), "wb") as f:
    f.write(b"Subject: while idling\r\n\r\nhello\r\n")
os.rename(os.path.join(newdir, "..", "tmp", name), os.path.join(newdir, name))
while True:
    while b"\r\n" not in plain:
        plain += rx.decompress(s.recv(65536))
    l, plain = plain.split(b"\r\n", 1)
    if l.endswith(b" EXISTS"):
        print("idle:", l.decode())
        break
send(b"DONE\r\n")
r = until(b"f")
assert r[-1].startswith(b"f OK"), r
send(b"g LOGOUT\r\n")
until(b"g")
"#,
            &[
                &l.port.to_string(),
                if args.is_empty() { "plain" } else { "tls" },
                &i.path("cert.pem").to_string_lossy(),
                &i.path("home/ann/Maildir/new").to_string_lossy(),
            ],
        );
        let n = std::fs::read_dir(i.path("home/ann/Maildir/cur"))
            .unwrap()
            .flatten()
            .count()
            + std::fs::read_dir(i.path("home/ann/Maildir/new"))
                .unwrap()
                .flatten()
                .count();
        let want = format!(
            "* {} EXISTS fetched {}\nidle: * {} EXISTS\n",
            n - 1,
            n - 1,
            n
        );
        assert_eq!(got, want, "{args:?}");
        assert!(n > stored);
    }
}

/// QUOTA (RFC 9208) from `userdb_quota_rule` in the users file: qrun
/// hands the limit to deliver, which bounces the message that would go
/// over it with 5.2.2 (or defers it with 4.2.2 under
/// `quota_full_tempfail`), and imapd reports usage and limits.
#[test]
fn quota_from_the_users_file_enforced_by_deliver_and_reported_by_imapd() {
    let mut i = Instance::new();
    let home = i.path("home/ann");
    i.write(
        "users",
        &format!(
            "ann:{{PLAIN}}x::::{}::userdb_quota_rule=*:storage=1M userdb_quota_rule2=*:messages=2\nbob:{{PLAIN}}x::::{}::\n",
            home.display(),
            i.path("home/bob").display()
        ),
    );
    i.init_spool();
    for n in 1..=3 {
        let out = i.sendmail(
            &["-f", "bob@mail.test", "ann"],
            format!("Subject: q{n}\n\nbody {n}\n").as_bytes(),
        );
        assert!(out.status.success());
        i.qrun_once();
    }
    assert_eq!(i.maildir("ann").len(), 2);
    let dsn = i.maildir("bob");
    assert_eq!(dsn.len(), 1, "one bounce for the third message");
    let d = text(&dsn[0]);
    assert!(
        d.contains("Status: 5.2.2") && d.contains("mailbox full"),
        "{d}"
    );

    let (out, err) = session(
        &i,
        "a LOGIN ann x\nb GETQUOTAROOT INBOX\nc GETQUOTA \"\"\nd SETQUOTA \"\" (STORAGE 10)\ne GETQUOTA \"nope\"\nf LOGOUT\n",
    );
    assert!(
        out.contains(" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"),
        "{out}"
    );
    assert!(out.contains("* QUOTAROOT INBOX \"\"\r\n"), "{out}{err}");
    assert_eq!(
        out.matches("* QUOTA \"\" (STORAGE 1 1024 MESSAGE 2 2)\r\n")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("d NO [NOPERM]") && out.contains("e NO [NONEXISTENT]"),
        "{out}"
    );

    // Deferred instead, when the config says so; mailq says why.
    i.write_config("quota_full_tempfail = true\n");
    let out = i.sendmail(&["-f", "bob@mail.test", "ann"], b"Subject: q4\n\nbody\n");
    assert!(out.status.success());
    i.qrun_once();
    assert_eq!(i.maildir("ann").len(), 2);
    let q = text(&i.run("sendmail", &["-bp"], b"").stdout);
    assert!(
        q.contains("4.2.2 mailbox full") || q.contains("mailbox full"),
        "{q}"
    );

    // bob has no quota: no root.
    let (out, _) = session(&i, "a LOGIN bob x\nb GETQUOTAROOT INBOX\nc LOGOUT\n");
    assert!(
        out.contains("* QUOTAROOT INBOX\r\n") && !out.contains("* QUOTA \""),
        "{out}"
    );
}

/// A QRESYNC client's cache of a folder: what it keeps between sessions.
#[derive(Debug, Default)]
struct Cached {
    validity: u32,
    highest: u64,
    flags: std::collections::BTreeMap<u32, String>,
}

/// code_value - the number after `[CODE ` in a response's lines.
fn code_value(lines: &[String], code: &str) -> Option<u64> {
    lines.iter().find_map(|l| {
        l.split(&format!("[{code} "))
            .nth(1)?
            .split(']')
            .next()?
            .parse()
            .ok()
    })
}

/// uid_list - `1:3,7` as UIDs.
fn uid_list(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
        v.extend(a.min(b)..=a.max(b));
    }
    v
}

impl Cached {
    /// resync - reconnect as a QRESYNC client does and apply what the
    /// server tells; the UIDs it said vanished and the UIDs it fetched.
    fn resync(&mut self, i: &Instance, step: usize) -> (Vec<u32>, Vec<u32>) {
        let mut l = Live::start(i);
        assert_eq!(l.cmd("ENABLE QRESYNC")[0], "* ENABLED QRESYNC");
        let known: Vec<String> = self.flags.keys().map(u32::to_string).collect();
        let r = l.cmd(&format!(
            "SELECT INBOX (QRESYNC ({} {} {}))",
            self.validity,
            self.highest,
            if known.is_empty() {
                "1".into()
            } else {
                known.join(",")
            }
        ));
        assert!(r.last().unwrap().contains("OK [READ-WRITE]"), "{r:?}");
        let highest = code_value(&r, "HIGHESTMODSEQ").expect("HIGHESTMODSEQ");
        assert!(
            highest >= self.highest,
            "step {step}: HIGHESTMODSEQ went back from {} to {highest}",
            self.highest
        );
        let mut vanished = Vec::new();
        for x in r
            .iter()
            .filter_map(|x| x.strip_prefix("* VANISHED (EARLIER) "))
        {
            vanished.extend(uid_list(x));
        }
        for u in &vanished {
            self.flags.remove(u);
        }
        let mut fetched = Vec::new();
        for (_, uid, f) in fetch_lines(&r) {
            fetched.push(uid);
            self.flags.insert(uid, f);
        }
        // New mail beyond the cache: fetched too, as a client would.
        let top = self.flags.keys().next_back().copied().unwrap_or(0);
        let r2 = l.cmd(&format!("UID FETCH {}:* (FLAGS)", top + 1));
        for (_, uid, f) in fetch_lines(&r2) {
            if uid > top {
                self.flags.insert(uid, f);
            }
        }
        self.highest = highest;
        vanished.sort_unstable();
        fetched.sort_unstable();
        (vanished, fetched)
    }
}

#[test]
fn qresync_reconnects_see_exactly_what_changed_against_a_model() {
    let i = Instance::new();
    seed(&i);
    let dir = i.path("home/ann/Maildir");
    let mut model: std::collections::BTreeMap<u32, String> =
        (1..=5).map(|u| (u, String::new())).collect();
    // The first session fills the cache.
    let mut c = Cached::default();
    {
        let mut l = Live::start(&i);
        l.cmd("ENABLE QRESYNC");
        let r = l.cmd("SELECT INBOX");
        c.validity = code_value(&r, "UIDVALIDITY").unwrap() as u32;
        c.highest = code_value(&r, "HIGHESTMODSEQ").unwrap();
        for (_, uid, f) in fetch_lines(&l.cmd("UID FETCH 1:* (FLAGS)")) {
            c.flags.insert(uid, f);
        }
    }
    assert_eq!(c.flags, model);
    let mut seed_n = 99u64;
    let mut rnd = |m: usize| {
        seed_n = seed_n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed_n >> 33) as usize) % m.max(1)
    };
    for step in 0..40 {
        // Between the client's sessions: changes by other sessions, by
        // deliver, and by a program renaming files itself.
        let mut changed = std::collections::BTreeSet::new();
        let mut expunged = std::collections::BTreeSet::new();
        let mut other = Live::start(&i);
        other.cmd("SELECT INBOX");
        for _ in 0..rnd(4) {
            let live: Vec<u32> = model.keys().copied().collect();
            match rnd(6) {
                0 => {
                    deliver(&i, &format!("step {step}"));
                    let r = other.cmd("UID FETCH * (UID FLAGS)");
                    let uid = fetch_lines(&r).last().map(|x| x.1).unwrap();
                    model.insert(uid, String::new());
                    changed.insert(uid);
                }
                1 if !live.is_empty() => {
                    let uid = live[rnd(live.len())];
                    other.cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
                    other.cmd(&format!("UID EXPUNGE {uid}"));
                    model.remove(&uid);
                    changed.remove(&uid);
                    expunged.insert(uid);
                }
                2 if !live.is_empty() => {
                    // mutt marks a message read: a rename, nothing else.
                    let uid = live[rnd(live.len())];
                    let r = other.cmd(&format!("UID FETCH {uid} BODY.PEEK[HEADER.FIELDS (X)]"));
                    assert!(r.last().unwrap().contains("OK"));
                    let name = std::fs::read_dir(dir.join("cur"))
                        .unwrap()
                        .flatten()
                        .map(|e| e.file_name().into_string().unwrap())
                        .find(|n| {
                            std::fs::read_to_string(dir.join("dovecot-uidlist"))
                                .unwrap()
                                .lines()
                                .any(|l| {
                                    l.split(' ').next() == Some(&uid.to_string())
                                        && l.contains(n.split(':').next().unwrap())
                                })
                        })
                        .unwrap();
                    if !name.ends_with('S') && !name.contains(",S") && !name.contains("S") {
                        let (base, info) = name.split_once(":2,").unwrap();
                        let mut letters: Vec<char> = info.chars().collect();
                        letters.push('S');
                        letters.sort();
                        let to: String = letters.into_iter().collect();
                        std::fs::rename(
                            dir.join("cur").join(&name),
                            dir.join("cur").join(format!("{base}:2,{to}")),
                        )
                        .unwrap();
                        let mut f: Vec<String> = model[&uid]
                            .split(' ')
                            .filter(|x| !x.is_empty())
                            .map(String::from)
                            .collect();
                        f.push("\\Seen".into());
                        f.sort();
                        model.insert(uid, f.join(" "));
                        changed.insert(uid);
                    }
                }
                _ if !live.is_empty() => {
                    let uid = live[rnd(live.len())];
                    let flag = ["\\Flagged", "\\Answered", "$Label"][rnd(3)];
                    let add = rnd(2) == 0;
                    let mut f: Vec<String> = model[&uid]
                        .split(' ')
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect();
                    let had = f.iter().any(|x| x == flag);
                    f.retain(|x| x != flag);
                    if add {
                        f.push(flag.to_string());
                    }
                    f.sort();
                    other.cmd(&format!(
                        "UID STORE {uid} {}FLAGS.SILENT ({flag})",
                        if add { "+" } else { "-" }
                    ));
                    if had != add {
                        changed.insert(uid);
                    }
                    model.insert(uid, f.join(" "));
                }
                _ => {}
            }
        }
        drop(other);
        if step % 10 == 5 {
            // The caches may go at any time: mod-sequences do not.
            let _ = std::fs::remove_file(dir.join("posthorn-cache"));
            let _ = std::fs::remove_file(dir.join("posthorn-list"));
        }
        let before = c.highest;
        // What the client knew: the server reports changes within that
        // (new mail it fetches on its own).
        let knew: std::collections::BTreeSet<u32> = c.flags.keys().copied().collect();
        let (vanished, fetched) = c.resync(&i, step);
        assert_eq!(c.flags, model, "step {step}: the cache after QRESYNC");
        let want: Vec<u32> = expunged.intersection(&knew).copied().collect();
        assert_eq!(vanished, want, "step {step}: VANISHED (EARLIER)");
        let want: Vec<u32> = changed.intersection(&knew).copied().collect();
        assert_eq!(fetched, want, "step {step}: the FETCHes");
        if changed.is_empty() && expunged.is_empty() {
            assert_eq!(c.highest, before, "step {step}: nothing changed");
        } else {
            assert!(
                c.highest > before,
                "step {step}: HIGHESTMODSEQ did not move"
            );
        }
    }
    // A lost mod-sequence file: the next values are above all given, and
    // the client is told every message again rather than too little.
    let last = c.highest;
    std::fs::remove_file(dir.join("posthorn-modseq")).unwrap();
    let (_, fetched) = c.resync(&i, 100);
    assert!(c.highest > last, "{} after {last}", c.highest);
    assert_eq!(fetched, model.keys().copied().collect::<Vec<_>>());
    assert_eq!(c.flags, model);
}

#[test]
fn python_imapclient_condstore_fetch_changedsince_and_search_modseq() {
    if !have_imapclient() {
        return;
    }
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
assert c.has_capability("CONDSTORE") and c.has_capability("QRESYNC")
print("enabled", c.enable("CONDSTORE"))
s = c.select_folder("INBOX")
h = s[b"HIGHESTMODSEQ"]
print("status", c.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == h)
c.add_flags([2, 4], [b"\\Flagged"])
r = c.fetch([1, 2, 3, 4, 5], ["FLAGS"], modifiers=["CHANGEDSINCE %d" % h])
print("changed", sorted(r), all(r[u][b"MODSEQ"][0] > h for u in r))
print("search", c.search(["MODSEQ", str(h + 1)]))
c.logout()
"#,
        )
        .arg(l.port.to_string())
        .output()
        .unwrap();
    let text_out = text(&out.stdout);
    assert!(out.status.success(), "{text_out}{}", text(&out.stderr));
    assert_eq!(
        text_out,
        "enabled [b'CONDSTORE']\nstatus True\nchanged [2, 4] True\nsearch [2, 4]\n"
    );
}

#[test]
fn unchangedsince_sees_another_sessions_store_it_was_not_told_of() {
    let i = Instance::new();
    seed(&i);
    let mut a = Live::start(&i);
    let mut b = Live::start(&i);
    let ra = a.cmd("SELECT INBOX (CONDSTORE)");
    b.cmd("SELECT INBOX (CONDSTORE)");
    let m = code_value(&ra, "HIGHESTMODSEQ").unwrap();
    let r = a.cmd(&format!("STORE 1 (UNCHANGEDSINCE {m}) +FLAGS (\\Flagged)"));
    assert!(r.last().unwrap().ends_with("OK STORE completed"), "{r:?}");
    // B has not looked since: a STORE by number may not tell it, but the
    // condition still holds against A's change.
    let r = b.cmd(&format!("STORE 1:2 (UNCHANGEDSINCE {m}) +FLAGS (\\Seen)"));
    assert_eq!(
        r.last().unwrap(),
        "t3 OK [MODIFIED 1] Conditional STORE failed",
        "{r:?}"
    );
    // The next look tells B of A's change, with its mod-sequence.
    let r = b.cmd("NOOP");
    assert_eq!(
        r[0],
        format!("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ({}))", m + 1)
    );
    let r = b.cmd("FETCH 1:2 (FLAGS MODSEQ)");
    let got = fetch_lines(&r);
    assert_eq!(got[0].2, "\\Flagged", "{r:?}");
    assert_eq!(got[1].2, "\\Seen", "{r:?}");
}

#[test]
fn imap4rev2_session_sees_updates_with_uids_and_no_recent() {
    let i = Instance::new();
    seed(&i);
    let mut a = Live::start(&i);
    let mut b = Live::start(&i);
    assert_eq!(a.cmd("ENABLE IMAP4rev2")[0], "* ENABLED IMAP4rev2");
    let r = a.cmd("SELECT INBOX");
    assert!(
        !r.iter()
            .any(|l| l.contains("RECENT") || l.contains("UNSEEN")),
        "{r:?}"
    );
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \".\" INBOX".to_string()),
        "{r:?}"
    );
    // An IMAP4rev1 session beside it still has \Recent.
    b.cmd("SELECT INBOX");
    deliver(&i, "for rev2");
    // The first session told of a message holds its \Recent (RFC 3501
    // §2.3.2), even when, being IMAP4rev2, it never says so.
    let r = b.cmd("NOOP");
    assert!(r.contains(&"* 1 RECENT".to_string()), "{r:?}");
    let r = a.cmd("NOOP");
    assert_eq!(r, vec!["* 6 EXISTS", "t4 OK NOOP completed"]);
    b.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)");
    // RFC 9051 §7.5.2: an unsolicited FETCH carries the UID.
    let r = a.cmd("NOOP");
    assert_eq!(r[0], "* 2 FETCH (UID 2 FLAGS (\\Flagged))", "{r:?}");
    let r = a.cmd("FETCH 6 FLAGS");
    assert_eq!(r[0], "* 6 FETCH (FLAGS ())", "{r:?}");
    let r = a.cmd("SEARCH FLAGGED");
    assert_eq!(r[0], "* ESEARCH (TAG \"t7\") ALL 2", "{r:?}");
}

#[test]
fn python_clients_share_a_utf8_mailbox_name_in_both_spellings() {
    if !have_imapclient() {
        return;
    }
    let i = Instance::new();
    seed(&i);
    let Some(l) = Launcher::start(&i, "imapd", &[]) else {
        return;
    };
    // imapclient speaks modified UTF-7 (IMAP4rev1); imaplib, once it has
    // enabled UTF8=ACCEPT, UTF-8. Both must name the same folder.
    let got = python(
        r#"
import sys, json, imaplib
from imapclient import IMAPClient
out = {}
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
out["caps"] = [x.decode() for x in c.capabilities() if x in (b"IMAP4REV2", b"UTF8=ACCEPT")]
c.create_folder("Entwürfe")
c.append("Entwürfe", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nHallo\r\n")
out["legacy_list"] = sorted(f[2] for f in c.list_folders())
c.logout()
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("ann", "x")
m.enable("UTF8=ACCEPT")
typ, data = m.response("ENABLED")
out["enabled"] = [d.decode() for d in data]
typ, data = m.list()
out["utf8_list"] = sorted(d.decode() for d in data)
typ, data = m.create('"日本語"')
out["create"] = typ
typ, data = m.select('"Entwürfe"')
out["select"] = [typ, data[0].decode()]
typ, data = m.search(None, "SUBJECT", '"Grüße"')
out["search"] = data[0].decode()
typ, data = m.status('"日本語"', "(MESSAGES)")
out["status"] = data[0].decode()
m.logout()
c = IMAPClient("127.0.0.1", port=int(sys.argv[1]), ssl=False, timeout=20)
c.login("ann", "x")
out["legacy_again"] = sorted(f[2] for f in c.list_folders())
c.logout()
print(json.dumps(out, ensure_ascii=False))
"#,
        &[&l.port.to_string()],
    );
    let v = got.trim();
    assert!(
        v.contains("\"caps\": [\"IMAP4REV2\", \"UTF8=ACCEPT\"]"),
        "{v}"
    );
    assert!(
        v.contains("\"legacy_list\": [\"Entwürfe\", \"INBOX\"]"),
        "{v}"
    );
    assert!(v.contains("\"enabled\": [\"UTF8=ACCEPT\"]"), "{v}");
    assert!(
        v.contains("\"utf8_list\": [\"(\\\\HasNoChildren) \\\".\\\" \\\"Entwürfe\\\"\", \"(\\\\HasNoChildren) \\\".\\\" INBOX\"]"),
        "{v}"
    );
    assert!(v.contains("\"create\": \"OK\""), "{v}");
    assert!(v.contains("\"select\": [\"OK\", \"1\"]"), "{v}");
    assert!(v.contains("\"search\": \"1\""), "{v}");
    assert!(
        v.contains("\"status\": \"\\\"日本語\\\" (MESSAGES 0)\""),
        "{v}"
    );
    assert!(
        v.contains("\"legacy_again\": [\"Entwürfe\", \"INBOX\", \"日本語\"]"),
        "{v}"
    );
    // On disk, Dovecot's spelling.
    assert!(i.path("home/ann/Maildir/.Entw&APw-rfe/cur").is_dir());
    assert!(i.path("home/ann/Maildir/.&ZeVnLIqe-/cur").is_dir());
}

/// expand - a sequence set's numbers in the order written (`5,1:3`).
fn expand(set: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
                v.extend(a.min(b)..=a.max(b));
            }
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

/// Model - what a client keeps of one update context (RFC 5267 §4.3):
/// the result in order, changed only by the server's ESEARCH lines and,
/// for sequence numbers, by EXPUNGE.
struct Model {
    tag: String,
    seq: bool,
    list: Vec<u32>,
    /// ADDTO and REMOVEFROM items applied.
    changes: usize,
}

impl Model {
    /// apply - one response line: ALL, ADDTO and REMOVEFROM for this
    /// tag, in the order they come; EXPUNGE renumbers.
    fn apply(&mut self, line: &str) {
        if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|r| r.strip_suffix(" EXPUNGE"))
            .and_then(|n| n.parse::<u32>().ok())
        {
            if self.seq {
                assert!(!self.list.contains(&n), "{n} expunged before REMOVEFROM");
                for x in &mut self.list {
                    if *x > n {
                        *x -= 1;
                    }
                }
            }
            return;
        }
        let head = format!("* ESEARCH (TAG \"{}\")", self.tag);
        let Some(rest) = line.strip_prefix(&head) else {
            return;
        };
        let rest = rest.strip_prefix(" UID").unwrap_or(rest).trim_start();
        let mut words = rest.split(' ').peekable();
        while let Some(name) = words.next() {
            if words.peek().is_none() {
                break;
            }
            let mut value = words.next().unwrap().to_string();
            if value.starts_with('(') {
                while !value.ends_with(')') {
                    value.push(' ');
                    value.push_str(words.next().unwrap());
                }
                value = value[1..value.len() - 1].to_string();
            }
            match name {
                "ALL" => self.list = expand(&value),
                "COUNT" | "MIN" | "MAX" => {}
                "ADDTO" | "REMOVEFROM" => {
                    self.changes += 1;
                    let v: Vec<&str> = value.split(' ').collect();
                    for pair in v.chunks(2) {
                        let pos: usize = pair[0].parse().unwrap();
                        let ids = expand(pair[1]);
                        if name == "ADDTO" && pos == 0 {
                            self.list.extend(ids);
                            self.list.sort_unstable();
                        } else if name == "ADDTO" {
                            assert!(pos <= self.list.len() + 1, "{line}");
                            for (k, id) in ids.into_iter().enumerate() {
                                self.list.insert(pos - 1 + k, id);
                            }
                        } else if pos == 0 {
                            self.list.retain(|x| !ids.contains(x));
                        } else {
                            for id in ids {
                                assert_eq!(self.list.get(pos - 1), Some(&id), "{line}");
                                self.list.remove(pos - 1);
                            }
                        }
                    }
                }
                _ => panic!("unexpected {name} in {line}"),
            }
        }
    }
}

/// numbers - the numbers of a `* SEARCH` or `* SORT` response.
fn numbers(lines: &[String], head: &str) -> Vec<u32> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(head))
        .map(|r| r.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn update_contexts_follow_deliveries_flags_and_expunges_of_others() {
    let i = Instance::new();
    seed(&i);
    let mut a = Live::start(&i);
    let mut b = Live::start(&i);
    a.cmd("SELECT INBOX");
    b.cmd("SELECT INBOX");
    // Three kept results, checked after every change against the same
    // question asked afresh: a UID search, a UID sort and a search by
    // sequence number, whose numbers shift under expunges.
    let queries = [
        (
            "UID SEARCH RETURN (UPDATE ALL)",
            "UNSEEN UNDELETED",
            "UID SEARCH",
            "* SEARCH",
        ),
        (
            "UID SORT RETURN (UPDATE ALL) (REVERSE SUBJECT)",
            "UTF-8 UNFLAGGED",
            "UID SORT (REVERSE SUBJECT)",
            "* SORT",
        ),
        (
            "SEARCH RETURN (UPDATE ALL)",
            "OR FLAGGED SUBJECT \"2\"",
            "SEARCH",
            "* SEARCH",
        ),
        (
            "SORT RETURN (UPDATE ALL) (SUBJECT)",
            "UTF-8 SEEN",
            "SORT (SUBJECT)",
            "* SORT",
        ),
    ];
    let mut models = Vec::new();
    for (ask, key, _, _) in &queries {
        let tag = format!("t{}", a.n + 1);
        let r = a.cmd(&format!("{ask} {key}"));
        let mut m = Model {
            tag,
            seq: !ask.starts_with("UID"),
            list: Vec::new(),
            changes: 0,
        };
        for l in &r {
            m.apply(l);
        }
        models.push(m);
    }
    // A fixed walk of changes by b and by deliver, small enough to read.
    let mut x: u32 = 7;
    let mut next = |n: u32| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 16) % n
    };
    let words = ["kiwi", "apple", "Re: mango", "banana 2", "cherry", "fig 2"];
    let check = |a: &mut Live, b: &mut Live, round: usize, models: &mut [Model]| {
        let r = a.cmd("NOOP");
        for m in models.iter_mut() {
            for l in &r {
                m.apply(l);
            }
        }
        for ((_, key, fresh, head), m) in queries.iter().zip(models.iter()) {
            let r = a.cmd(&format!("{fresh} {key}"));
            assert_eq!(m.list, numbers(&r, head), "round {round}: {fresh} {key}");
        }
        // b has seen it all too, so that its numbers are a's.
        b.cmd("NOOP");
    };
    for round in 0..40 {
        match next(5) {
            0 => deliver(&i, words[next(words.len() as u32) as usize]),
            1 | 2 => {
                let flag = ["\\Seen", "\\Flagged", "\\Deleted"][next(3) as usize];
                let sign = if next(2) == 0 { '+' } else { '-' };
                let n = uids(&mut b).len() as u32;
                if n > 0 {
                    b.cmd(&format!(
                        "STORE {} {sign}FLAGS.SILENT ({flag})",
                        next(n) + 1
                    ));
                }
            }
            3 => {
                b.cmd("EXPUNGE");
            }
            _ => {
                // Both at once: one NOOP must carry both in order.
                deliver(&i, words[next(words.len() as u32) as usize]);
                let n = uids(&mut b).len() as u32;
                b.cmd(&format!("STORE {} +FLAGS.SILENT (\\Seen)", next(n) + 1));
            }
        }
        check(&mut a, &mut b, round, &mut models);
    }
    // Then everything joins the flagged and leaves the unflagged, and
    // goes: sequence numbers removed before the EXPUNGEs renumber.
    b.cmd("STORE 1:* +FLAGS.SILENT (\\Flagged \\Deleted \\Seen)");
    check(&mut a, &mut b, 40, &mut models);
    b.cmd("EXPUNGE");
    check(&mut a, &mut b, 41, &mut models);
    assert!(models.iter().all(|m| m.list.is_empty()));
    // During IDLE too.
    deliver(&i, "while idle");
    a.send("t900 IDLE");
    let r = a.until(|l| l.starts_with("* ESEARCH (TAG \"t3\")"));
    a.send("DONE");
    let r2 = a.until(|l| l.starts_with("t900 "));
    for m in &mut models {
        for l in r.iter().chain(&r2) {
            m.apply(l);
        }
    }
    check(&mut a, &mut b, 42, &mut models);
    // Something happened to every result on the way.
    for m in &models {
        assert!(m.changes >= 3, "{} saw {} changes", m.tag, m.changes);
    }
    let r = a.cmd("CANCELUPDATE \"t2\" \"t3\" \"t4\" \"t5\"");
    assert!(r.last().unwrap().contains("OK"), "{r:?}");
    deliver(&i, "after the end");
    let r = a.cmd("NOOP");
    assert!(!r.iter().any(|l| l.contains("ESEARCH")), "{r:?}");
}

#[test]
fn update_contexts_take_a_whole_mailbox_changing_at_once() {
    let i = Instance::new();
    many(&i, 3000);
    let mut a = Live::start(&i);
    a.cmd("SELECT INBOX");
    let r = a.cmd("UID SORT RETURN (UPDATE COUNT) (ARRIVAL) UTF-8 UNFLAGGED");
    assert_eq!(r[0], "* ESEARCH (TAG \"t3\") UID COUNT 3000", "{r:?}");
    let r = a.cmd("SEARCH RETURN (UPDATE COUNT) FLAGGED");
    assert_eq!(r[0], "* ESEARCH (TAG \"t4\") COUNT 0", "{r:?}");
    // Everything leaves the sort and joins the search, each as one run
    // (every file has the same date: arrival ties go by number).
    let r = a.cmd("STORE 1:* +FLAGS.SILENT (\\Flagged)");
    assert_eq!(
        r,
        [
            "* ESEARCH (TAG \"t3\") UID REMOVEFROM (1 1:3000)",
            "* ESEARCH (TAG \"t4\") ADDTO (0 1:3000)",
            "t5 OK STORE completed",
        ]
    );
    // And back, all but the first two.
    let r = a.cmd("UID STORE 3:* -FLAGS.SILENT (\\Flagged)");
    assert_eq!(
        r,
        [
            "* ESEARCH (TAG \"t3\") UID ADDTO (1 3:3000)",
            "* ESEARCH (TAG \"t4\") REMOVEFROM (0 3:3000)",
            "t6 OK STORE completed",
        ]
    );
}

/// sort_cache_messages - messages with headers that are hard to get
/// right twice: RFC 2047 subjects and names, no Date or a bad one,
/// folded and overlong References, a header line without a colon,
/// duplicate Message-IDs and fields, and no header at all.
fn sort_cache_messages() -> Vec<String> {
    let long: String = (0..800)
        .map(|n| format!(" <long{n}@example.org>\n"))
        .collect();
    vec![
        "Message-ID: <t1@x>\nFrom: =?utf-8?q?J=C3=BCrgen_Z?= <jz@x>\nTo: Team: b@x, a@x;\nSubject: =?utf-8?q?Re=3A_=C3=9Cber?= den Plan\nDate: Tue, 3 Feb 2026 10:00:00 +0100\n\nbody\n".into(),
        "Message-ID: <t2@x>\nFrom: \"Zed, A.\" <zed@x>\nTo: (comment) <to@x>\nReferences: <t1@x>\n <t0@x>\n\t<t1@x>\nSubject: =?iso-8859-1?q?Fwd=3A_=DCber_den_Plan?= (fwd)\n\nno date\n".into(),
        "Message-ID: <t3@x>\nIn-Reply-To: <t2@x> (so it says)\nDate: yesterday\nSubject: [list] re: über den plan\nCc: =?utf-8?b?w4Rk?= <cc@x>\n\nbad date\n".into(),
        format!("Message-ID: <t4@x>\nReferences:\n{long}Subject: long thread\nDate: 1 Feb 2026 00:00 -0000\n\nlong references\n"),
        "Subject: broken\nthis line has no colon\nMessage-ID: <t5@x>\nDate: 2 Feb 2026 00:00 +0000\n\nbroken\n".into(),
        "Message-ID: <t1@x>\nSubject: first\nSubject: second\nFrom: a@x\nFrom: b@x\nX-Note: =?utf-8?q?=C3=9Cber?=\nDate: 2 Feb 2026 00:00 +1400\n\nduplicates\n".into(),
        "\nno header at all\n".into(),
        "Subject: =?utf-8?q?broken=ZZ?= =?bogus?q?x?=\nDate: Mon, 2 Feb 2026 12:00:00 GMT\nReferences: <long7@example.org>\n\nbad words\n".into(),
    ]
}

/// SORT, THREAD and header SEARCH answer the same from the folder's
/// cache (filled by an earlier SORT, or by FETCH) as from the messages
/// themselves, and every message with headers small enough is cached.
#[test]
fn sort_and_thread_from_the_cache_equal_them_without_it() {
    let i = Instance::new();
    seed(&i);
    let dir = i.path("home/ann/Maildir");
    let tricky = sort_cache_messages();
    for (n, m) in tricky.iter().enumerate() {
        let t = 1_770_000_000 + 3600 * n as u64;
        let f = dir.join(format!("cur/{t}.T{n}P2.test:2,"));
        std::fs::write(&f, m).unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t))
            .unwrap();
    }
    let script = "a LOGIN ann x\nb EXAMINE INBOX\n\
        c SORT (DATE) UTF-8 ALL\n\
        d SORT (REVERSE SUBJECT FROM) UTF-8 ALL\n\
        e SORT (CC TO REVERSE ARRIVAL) UTF-8 ALL\n\
        f SORT (DISPLAYFROM REVERSE DISPLAYTO SIZE) UTF-8 ALL\n\
        g THREAD REFERENCES UTF-8 ALL\n\
        h UID THREAD ORDEREDSUBJECT UTF-8 ALL\n\
        i SEARCH HEADER SUBJECT \"plan\" SENTSINCE 2-Feb-2026\n\
        j SORT (SUBJECT) UTF-8 OR HEADER References \"long7\" HEADER X-Note \"ber\"\n\
        k SEARCH NOT SENTBEFORE 1-Jan-2000\n\
        l SORT RETURN (ALL COUNT) (DATE REVERSE FROM) UTF-8 HEADER MESSAGE-ID \"@x\"\n\
        z LOGOUT\n";
    let cache = dir.join("posthorn-cache");
    let heads = || {
        let b = std::fs::read(&cache).unwrap_or_default();
        b.split(|&c| c == b'\n')
            .filter(|l| l.starts_with(b"H "))
            .count()
    };
    let total = 5 + tricky.len();
    let (cold, err) = session(&i, script);
    assert!(!err.contains("panic"), "{err}");
    assert!(
        cold.contains("* THREAD (") && cold.contains("z OK"),
        "{cold}"
    );
    assert_eq!(cold.matches(" OK SORT completed").count(), 6, "{cold}");
    // By sent date in UTC (RFC 5256 §2.2): 1996 first; "1 Feb 2026
    // 00:00 -0000" (5) before "2 Feb 2026 00:00 +1400" (7, 1 February
    // 10:00 UTC) before "2 Feb 2026 00:00 +0000" (6); messages without a
    // usable Date (no field, "yesterday", no header) among the others by
    // their internal dates, which SORT stats only for them.
    assert!(
        cold.contains("* SORT 1 5 7 6 3 4 10 8 9 2 11 12 13\r\n"),
        "{cold}"
    );
    // The one with 800 References is over the limit: read each time.
    assert_eq!(heads(), total - 1, "a header entry per message");
    let (warm, _) = session(&i, script);
    assert_eq!(warm, cold, "from the cache");
    // Filled by FETCH instead.
    std::fs::remove_file(&cache).unwrap();
    session(
        &i,
        "a LOGIN ann x\nb EXAMINE INBOX\nc FETCH 1:* ENVELOPE\nz LOGOUT\n",
    );
    assert_eq!(heads(), total - 1, "FETCH ENVELOPE fills it too");
    let (fetched, _) = session(&i, script);
    assert_eq!(fetched, cold, "from the cache FETCH filled");
    // An old or damaged cache is no cache at all.
    std::fs::write(&cache, "posthorn-cache 1 V1\n1 2 3 4 5\n").unwrap();
    assert_eq!(session(&i, script).0, cold, "over a version 1 file");
    assert_eq!(heads(), total - 1, "rewritten");
}
