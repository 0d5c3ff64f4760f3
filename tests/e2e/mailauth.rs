//! Mail authentication (issue 16): SPF, DKIM and DMARC checks in smtpd's
//! MX mode against a loopback DNS (dnsmasq), compared with pyspf and
//! dkimpy (Debian's python3-spf and python3-dkim) over a corpus; DKIM
//! signing by qrun checked by dkimpy and OpenDKIM on what an aiosmtpd
//! sink received through remote; DMARC policy; dkimkey.
//!
//! Every outside tool is required: a missing one fails the test (CI
//! installs them in .ci/run).

use crate::harness::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian's Python, which has python3-spf, python3-dkim and nacl.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/mailauth")
        .join(name)
}

/// debian_python - run a script of tests/data/mailauth with Debian's
/// Python; its standard output, or a panic with its error.
fn debian_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(DEBIAN_PYTHON)
        .arg(data(script))
        .args(args)
        .output()
        .expect("/usr/bin/python3 is needed (apt-get install python3-dkim python3-spf)");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// txt_record - a dnsmasq --txt-record option, the text cut into
/// strings of at most 255 octets (a DKIM RSA key needs two). On the
/// command line dnsmasq takes each comma-separated part as one string,
/// quotes included, so the texts here have no commas and no quotes.
fn txt_record(name: &str, value: &str) -> String {
    assert!(!value.contains([',', '"']), "{value}");
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", parts.join(","))
}

/// dns - dnsmasq with these options; dnsmasq must be installed.
fn dns(records: &[String]) -> Dns {
    Dns::start(records).expect("dnsmasq is needed (apt-get install dnsmasq-base)")
}

/// smtp_session - one SMTP session with smtpd on a pipe, as a network
/// client at `ip` (TCPREMOTEIP) that waits for each reply; one message
/// per file. Returns smtpd's replies and its log.
fn smtp_session(
    i: &Instance,
    ip: &str,
    helo: &str,
    sender: &str,
    rcpt: &str,
    files: &[PathBuf],
) -> (String, String) {
    let smtpd = bin_dir().join("smtpd");
    let cfg = i.config.display().to_string();
    // cmd() hands the instance to the test user first.
    let _ = i.cmd("smtpd");
    // The same user, environment and directory as smtpd gets from cmd(),
    // with Debian's Python (which nobody may run) as the client.
    let mut py = Command::new(DEBIAN_PYTHON);
    py.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("POSTHORN_CONFIG", &i.config)
        .env("TZ", "UTC")
        .env("TCPREMOTEIP", ip)
        .current_dir(&i.root)
        .arg(data("smtp_pipe.py"))
        .args([smtpd.to_str().unwrap(), &cfg, helo, sender, rcpt])
        .args(files);
    if let Some((u, g)) = run_ids() {
        use std::os::unix::process::CommandExt;
        py.uid(u).gid(g);
    }
    let out = py.stdin(Stdio::null()).output().unwrap();
    (text(&out.stdout), text(&out.stderr))
}

/// results - the Authentication-Results values of a message, unfolded,
/// split into their "method=result ..." parts.
fn ar_parts(msg: &[u8]) -> Vec<String> {
    headers(msg, "Authentication-Results")
        .iter()
        .flat_map(|v| v.split(';').skip(1).map(|p| p.trim().to_string()))
        .collect()
}

/// by_subject - each message of the Maildir at `rel` by its Subject, lower case.
fn by_subject(i: &Instance, rel: &str) -> HashMap<String, Vec<u8>> {
    i.maildir_at(rel)
        .into_iter()
        .map(|m| (header(&m, "Subject").unwrap_or_default().to_lowercase(), m))
        .collect()
}

/// The SPF corpus: every mechanism and modifier, macros, the limits.
fn spf_zone() -> Vec<String> {
    let mut r = vec![
        txt_record(
            "pass.test",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all",
        ),
        txt_record("soft.test", "v=spf1 ip4:192.0.2.1 ~all"),
        txt_record("neutral.test", "v=spf1 ?all"),
        txt_record("plus.test", "v=spf1 +all"),
        txt_record("noall.test", "v=spf1 ip4:203.0.113.1"),
        txt_record(
            "inc.test",
            "v=spf1 include:pass.test include:soft.test -all",
        ),
        txt_record("red.test", "v=spf1 redirect=pass.test"),
        txt_record("redsoft.test", "v=spf1 ip4:198.51.100.9 redirect=soft.test"),
        txt_record("a.test", "v=spf1 a a:h.a.test/28 -all"),
        "--host-record=a.test,192.0.2.10".into(),
        "--host-record=h.a.test,198.51.100.1".into(),
        txt_record("mx.test", "v=spf1 mx mx:other.mx.test/24 -all"),
        "--mx-host=mx.test,mx1.mx.test,10".into(),
        "--host-record=mx1.mx.test,203.0.113.7".into(),
        "--mx-host=other.mx.test,mx2.mx.test,10".into(),
        "--host-record=mx2.mx.test,198.51.100.200".into(),
        txt_record("ptr.test", "v=spf1 ptr -all"),
        "--host-record=mail.ptr.test,192.0.2.44".into(),
        // Other reverse names are answered NXDOMAIN, not left unanswered.
        "--local=/2.0.192.in-addr.arpa/".into(),
        txt_record("ptrother.test", "v=spf1 ptr:elsewhere.test -all"),
        txt_record("exists.test", "v=spf1 exists:%{i}.ok.exists.test -all"),
        "--host-record=192.0.2.55.ok.exists.test,127.0.0.2".into(),
        txt_record(
            "macro.test",
            "v=spf1 exists:%{ir}.%{v}._spf.%{d2} exists:%{l1r-}.users.%{d} -all",
        ),
        "--host-record=66.2.0.192.in-addr._spf.macro.test,127.0.0.2".into(),
        "--host-record=joe.users.macro.test,127.0.0.2".into(),
        txt_record("badcidr.test", "v=spf1 ip4:192.0.2.0/33 -all"),
        txt_record("badmech.test", "v=spf1 ip4:192.0.2.1 frobnicate -all"),
        txt_record("two.test", "v=spf1 -all"),
        txt_record("two.test", "v=spf1 +all"),
        txt_record("incnone.test", "v=spf1 include:nospf.test -all"),
        txt_record("rednone.test", "v=spf1 redirect=nospf.test"),
        "--host-record=nospf.test,192.0.2.1".into(),
        txt_record(
            "void.test",
            "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test +all",
        ),
        txt_record(
            "void2.test",
            "v=spf1 a:nx1.void2.test a:nx2.void2.test +all",
        ),
        txt_record("nospfrec.test", "some other text"),
        txt_record("helo.test", "v=spf1 a -all"),
        "--host-record=helo.test,192.0.2.77".into(),
        txt_record("exp.test", "v=spf1 -all exp=why.exp.test"),
        txt_record("why.exp.test", "%{i} may not send mail for %{d}"),
        txt_record("case.test", "V=SPF1 IP4:192.0.2.0/24 -ALL"),
        txt_record("unknownmod.test", "v=spf1 moo=cow ip4:192.0.2.0/24 -all"),
    ];
    let many: String = (1..=11)
        .map(|n| format!(" include:i{n}.many.test"))
        .collect();
    r.push(txt_record("many.test", &format!("v=spf1{many} -all")));
    for n in 1..=11 {
        r.push(txt_record(
            &format!("i{n}.many.test"),
            "v=spf1 ip4:10.9.9.9 -all",
        ));
    }
    let ten: String = (1..=9)
        .map(|n| format!(" include:i{n}.many.test"))
        .collect();
    r.push(txt_record(
        "ten.test",
        &format!("v=spf1{ten} a:h.a.test -all"),
    ));
    r
}

/// SPF for MAIL FROM (and HELO for <>) of every corpus case: our result,
/// read from the Authentication-Results field of the delivered message,
/// is pyspf's.
#[test]
fn spf_results_agree_with_pyspf() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("192.0.2.7", "a@pass.test", "c.test"),
        ("198.51.100.7", "a@pass.test", "c.test"),
        ("2001:db8::7", "a@pass.test", "c.test"),
        ("2001:db9::7", "a@pass.test", "c.test"),
        ("192.0.2.1", "a@soft.test", "c.test"),
        ("192.0.2.2", "a@soft.test", "c.test"),
        ("192.0.2.2", "a@neutral.test", "c.test"),
        ("192.0.2.2", "a@plus.test", "c.test"),
        ("192.0.2.2", "a@noall.test", "c.test"),
        ("192.0.2.9", "a@inc.test", "c.test"),
        ("192.0.2.1", "a@inc.test", "c.test"),
        ("198.51.100.3", "a@inc.test", "c.test"),
        ("192.0.2.9", "a@red.test", "c.test"),
        ("198.51.100.3", "a@red.test", "c.test"),
        ("198.51.100.9", "a@redsoft.test", "c.test"),
        ("198.51.100.8", "a@redsoft.test", "c.test"),
        ("192.0.2.10", "a@a.test", "c.test"),
        ("198.51.100.14", "a@a.test", "c.test"),
        ("198.51.100.17", "a@a.test", "c.test"),
        ("203.0.113.7", "a@mx.test", "c.test"),
        ("198.51.100.33", "a@mx.test", "c.test"),
        ("203.0.113.8", "a@mx.test", "c.test"),
        ("192.0.2.44", "a@ptr.test", "c.test"),
        ("192.0.2.45", "a@ptr.test", "c.test"),
        ("192.0.2.44", "a@ptrother.test", "c.test"),
        ("192.0.2.55", "a@exists.test", "c.test"),
        ("192.0.2.56", "a@exists.test", "c.test"),
        ("192.0.2.66", "x@macro.test", "c.test"),
        ("192.0.2.67", "joe-x@macro.test", "c.test"),
        ("192.0.2.67", "bob@macro.test", "c.test"),
        ("192.0.2.1", "a@badcidr.test", "c.test"),
        ("192.0.2.1", "a@badmech.test", "c.test"),
        ("192.0.2.1", "a@two.test", "c.test"),
        ("192.0.2.1", "a@incnone.test", "c.test"),
        ("192.0.2.1", "a@rednone.test", "c.test"),
        ("192.0.2.1", "a@nospf.test", "c.test"),
        ("192.0.2.1", "a@nxdomain.test", "c.test"),
        ("192.0.2.1", "a@void.test", "c.test"),
        ("192.0.2.1", "a@void2.test", "c.test"),
        ("192.0.2.1", "a@nospfrec.test", "c.test"),
        ("192.0.2.1", "a@many.test", "c.test"),
        ("198.51.100.1", "a@ten.test", "c.test"),
        ("192.0.2.1", "a@exp.test", "c.test"),
        ("192.0.2.3", "a@case.test", "c.test"),
        ("192.0.2.3", "a@unknownmod.test", "c.test"),
        // The null sender: MAIL FROM is checked as postmaster@HELO.
        ("192.0.2.77", "", "helo.test"),
        ("192.0.2.78", "", "helo.test"),
    ];
    let d = dns(&spf_zone());
    let mut i = Instance::new();
    i.write_config(&format!("resolver = \"127.0.0.1:{}\"\n", d.port));
    i.init_spool();
    for (n, (ip, sender, helo)) in cases.iter().enumerate() {
        i.write(
            &format!("m{n}.eml"),
            &format!("From: x@c.example\nSubject: spf {n}\n\nhi\n"),
        );
        let (out, log) = smtp_session(
            &i,
            ip,
            helo,
            sender,
            "ann@mail.test",
            &[i.path(&format!("m{n}.eml"))],
        );
        assert!(out.contains("queued as"), "case {n}: {out}\n{log}");
    }
    i.qrun_once();
    let got = by_subject(&i, "home/ann/Maildir");
    let json: Vec<[&str; 3]> = cases.iter().map(|(a, b, c)| [*a, *b, *c]).collect();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), format!("{json:?}")).unwrap();
    let want = debian_python(
        "spf_oracle.py",
        &[&d.port.to_string(), f.path().to_str().unwrap()],
    );
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(want.len(), cases.len());
    let mut wrong = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let msg = got
            .get(&format!("spf {n}"))
            .unwrap_or_else(|| panic!("case {n} was not delivered"));
        let spf = ar_parts(msg)
            .into_iter()
            .find(|p| p.starts_with("spf=") && p.contains("smtp.mailfrom="))
            .unwrap_or_else(|| panic!("case {n}: no spf result: {}", text(msg)));
        let ours = spf[4..].split_whitespace().next().unwrap_or("").to_string();
        if ours != want[n] {
            wrong.push(format!("{case:?}: ours {ours}, pyspf {} ({spf})", want[n]));
        }
    }
    assert!(wrong.is_empty(), "SPF disagreements:\n{}", wrong.join("\n"));
}

/// DKIM verdicts of every signature in the dkimpy-signed corpus, as the
/// Authentication-Results field reports them, are dkimpy's own, except
/// where dkimpy is laxer than RFC 6376 (named below).
#[test]
fn dkim_verdicts_agree_with_dkimpy() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    debian_python("dkim_corpus.py", &[corpus.to_str().unwrap()]);
    let keys = std::fs::read_to_string(corpus.join("keys.txt")).unwrap();
    let records: Vec<String> = keys
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, v)| txt_record(n, v))
        .collect();
    let d = dns(&records);
    let mut i = Instance::new();
    i.write_config(&format!("resolver = \"127.0.0.1:{}\"\n", d.port));
    i.init_spool();
    let expected: HashMap<String, Vec<bool>> = {
        let t = std::fs::read_to_string(corpus.join("expected.json")).unwrap();
        parse_expected(&t)
    };
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let p = i.path(&format!("{n}.eml"));
            std::fs::copy(corpus.join(format!("{n}.eml")), &p).unwrap();
            p
        })
        .collect();
    let (out, log) = smtp_session(
        &i,
        "192.0.2.200",
        "c.test",
        "ann@signer.test",
        "ann@mail.test",
        &files,
    );
    assert_eq!(
        out.matches("queued as").count(),
        files.len(),
        "{out}\n{log}"
    );
    i.qrun_once();
    let got = by_subject(&i, "home/ann/Maildir");
    // Where RFC 6376 asks more than dkimpy checks: a key whose h= does not
    // allow sha256 (3.6.1, 6.1.2) and a t=s key with i= in a subdomain
    // (3.6.1) must not verify.
    let rfc: HashMap<&str, Vec<bool>> = HashMap::from([("14", vec![false]), ("16", vec![false])]);
    let mut wrong = Vec::new();
    for n in names {
        let msg = got
            .get(&format!("case {n}"))
            .unwrap_or_else(|| panic!("case {n} was not delivered"));
        let ours: Vec<bool> = ar_parts(msg)
            .iter()
            .filter(|p| p.starts_with("dkim="))
            .filter(|p| !p.starts_with("dkim=none"))
            .map(|p| p.starts_with("dkim=pass"))
            .collect();
        let want = rfc.get(n.as_str()).unwrap_or(&expected[n]);
        if &ours != want {
            wrong.push(format!(
                "case {n}: ours {ours:?}, expected {want:?}: {:?}",
                ar_parts(msg)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "DKIM disagreements:\n{}",
        wrong.join("\n")
    );
}

/// parse_expected - {"01": [true], ...} without a JSON crate.
fn parse_expected(t: &str) -> HashMap<String, Vec<bool>> {
    let mut out = HashMap::new();
    for part in t.trim().trim_matches(['{', '}']).split("], ") {
        let (k, v) = part.split_once(": [").unwrap();
        let v = v.trim_end_matches(']');
        out.insert(
            k.trim_matches('"').to_string(),
            v.split(", ")
                .filter(|x| !x.is_empty())
                .map(|x| x == "true")
                .collect(),
        );
    }
    out
}

/// DMARC with `[dmarc] enforce`: p=reject refused at the end of DATA
/// with 550 5.7.1, p=quarantine filed in Junk, a pass in the inbox, a
/// subdomain ruled by its organizational domain's sp=; SPF fail refused
/// at MAIL FROM with `[spf] reject_fail` and the domain's exp= text;
/// forged Authentication-Results with our name removed.
#[test]
fn dmarc_policy_spf_rejection_and_forged_results() {
    let d = dns(&[
        txt_record("reject.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_record("_dmarc.reject.test", "v=DMARC1; p=reject; sp=quarantine"),
        txt_record("quar.test", "v=spf1 ip4:192.0.2.1 ~all"),
        txt_record("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt_record("strictspf.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_record("_dmarc.strictspf.test", "v=DMARC1; p=reject; aspf=s"),
        txt_record("mail.strictspf.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_record("exp.test", "v=spf1 -all exp=why.exp.test"),
        txt_record("why.exp.test", "%{i} may not send mail for %{d}"),
    ]);
    let mut i = Instance::new();
    i.write_config(&format!(
        "resolver = \"127.0.0.1:{}\"\n[dmarc]\nenforce = true\n[spf]\nreject_fail = true\n",
        d.port
    ));
    i.init_spool();
    let msg = |i: &Instance, n: &str, from: &str| {
        i.write(
            &format!("{n}.eml"),
            &format!(
                "Authentication-Results: mail.test; dkim=pass header.d=reject.test\nAuthentication-Results: other.example; spf=pass\nFrom: {from}\nSubject: {n}\n\nhi\n"
            ),
        );
        i.path(&format!("{n}.eml"))
    };
    // Aligned SPF pass from the right address: delivered, forgery gone.
    let (out, _) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@reject.test",
        "ann@mail.test",
        &[msg(&i, "pass", "a@reject.test")],
    );
    assert!(out.contains("250 2.0.0 Ok: queued"), "{out}");
    // From a stranger's address: SPF fails, refused at MAIL FROM.
    let (out, log) = smtp_session(
        &i,
        "192.0.2.9",
        "c.test",
        "a@reject.test",
        "ann@mail.test",
        &[msg(&i, "x", "a@reject.test")],
    );
    assert!(
        out.contains("550 5.7.23 <a@reject.test>: Sender address rejected: SPF check failed"),
        "{out}"
    );
    assert!(
        log.contains("NOQUEUE: reject: MAIL from unknown[192.0.2.9]: 550 5.7.23"),
        "{log}"
    );
    let (out, _) = smtp_session(
        &i,
        "192.0.2.9",
        "c.test",
        "b@exp.test",
        "ann@mail.test",
        &[msg(&i, "y", "b@exp.test")],
    );
    assert!(
        out.contains("SPF check failed: 192.0.2.9 may not send mail for exp.test"),
        "{out}"
    );
    // SPF passes for another domain (not aligned): DMARC p=reject.
    let (out, log) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@quar.test",
        "ann@mail.test",
        &[msg(&i, "rej", "boss@reject.test")],
    );
    assert!(
        out.contains("550 5.7.1 Email rejected per DMARC policy for reject.test"),
        "{out}"
    );
    assert!(log.contains("reject: END-OF-MESSAGE"), "{log}");
    // Strict SPF alignment: mail.strictspf.test is not strictspf.test.
    let (out, _) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@mail.strictspf.test",
        "ann@mail.test",
        &[msg(&i, "strict", "a@strictspf.test")],
    );
    assert!(out.contains("550 5.7.1"), "{out}");
    // p=quarantine; and a subdomain (no record of its own) under its
    // organizational domain's sp=quarantine: both in Junk. (SPF passes
    // for the other domain each time, so it is not aligned.)
    let (out, _) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@reject.test",
        "ann@mail.test",
        &[msg(&i, "quar", "a@quar.test")],
    );
    assert!(out.contains("queued as"), "{out}");
    let (out, _) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@quar.test",
        "ann@mail.test",
        &[msg(&i, "sub", "a@news.reject.test")],
    );
    assert!(out.contains("queued as"), "{out}");
    i.qrun_once();
    let inbox = by_subject(&i, "home/ann/Maildir");
    let junk = by_subject(&i, "home/ann/Maildir/.Junk");
    assert_eq!(
        inbox.keys().collect::<Vec<_>>(),
        vec!["pass"],
        "{:?}",
        inbox.keys()
    );
    let mut j: Vec<&String> = junk.keys().collect();
    j.sort();
    assert_eq!(j, vec!["quar", "sub"]);
    assert!(i.path("home/ann/Maildir/.Junk/maildirfolder").exists());
    let pass = &inbox["pass"];
    let ars = headers(pass, "Authentication-Results");
    assert_eq!(ars.len(), 2, "ours and other.example's: {ars:?}");
    assert!(
        ars[0].starts_with("mail.test;") && ars[0].contains("dmarc=pass"),
        "{ars:?}"
    );
    assert!(ars[0].contains("spf=pass") && ars[0].contains("smtp.mailfrom=a@reject.test"));
    assert!(ars[1].starts_with("other.example"), "{ars:?}");
    // Ours sits on top, above our Received:.
    let t = text(pass);
    assert!(t.find("Authentication-Results: mail.test").unwrap() < t.find("Received:").unwrap());
    assert_eq!(header(&junk["quar"], "X-Spam").as_deref(), Some("Yes"));
    assert!(
        headers(&junk["sub"], "Authentication-Results")[0]
            .contains("dmarc=fail (p=quarantine dis=quarantine) header.from=news.reject.test")
    );

    // Without enforce the same mail is only reported; from this host's
    // loopback nothing is checked (OpenDMARC's IgnoreHosts).
    i.write_config(&format!("resolver = \"127.0.0.1:{}\"\n", d.port));
    let (out, _) = smtp_session(
        &i,
        "192.0.2.1",
        "c.test",
        "a@quar.test",
        "ann@mail.test",
        &[msg(&i, "report", "boss@reject.test")],
    );
    assert!(out.contains("queued as"), "{out}");
    let (out, _) = smtp_session(
        &i,
        "127.0.0.1",
        "c.test",
        "a@quar.test",
        "ann@mail.test",
        &[msg(&i, "local", "boss@reject.test")],
    );
    assert!(out.contains("queued as"), "{out}");
    i.qrun_once();
    let inbox = by_subject(&i, "home/ann/Maildir");
    assert!(
        headers(&inbox["report"], "Authentication-Results")[0]
            .contains("dmarc=fail (p=reject dis=reject)")
    );
    let local = headers(&inbox["local"], "Authentication-Results");
    assert_eq!(
        local,
        vec!["other.example; spf=pass".to_string()],
        "only the unchecked stranger's field: {local:?}"
    );
}

/// record_of - the TXT text dkimkey printed, its strings joined.
fn record_of(out: &str) -> String {
    let first = out.split(')').next().unwrap_or("");
    first
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

/// What qrun signs reaches the sink through remote and verifies under
/// dkimpy and OpenDKIM, for both algorithms at once (dual signing),
/// 8-bit bodies, lines remote had to break and dot-stuffed lines; a
/// stranger's mail forwarded on is not signed; a retry sends the same
/// signature, kept in spool/dkim.
#[test]
fn signatures_made_by_qrun_verify_at_the_far_end() {
    let opendkim = Path::new("/usr/sbin/opendkim");
    assert!(
        opendkim.exists(),
        "opendkim is needed (apt-get install opendkim)"
    );
    let out = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .unwrap();
    assert!(out.success(), "aiosmtpd is needed (pip install aiosmtpd)");
    let mut i = Instance::new();
    i.write("keys/.keep", "");
    let ed = i.run(
        "dkimkey",
        &["-d", "example.test", "-s", "ed", "keys/ed.pem"],
        b"",
    );
    assert!(ed.status.success(), "{}", text(&ed.stderr));
    let rsa = i.run(
        "dkimkey",
        &[
            "-a",
            "rsa",
            "-d",
            "example.test",
            "-s",
            "rsa",
            "keys/rsa.pem",
        ],
        b"",
    );
    assert!(rsa.status.success(), "{}", text(&rsa.stderr));
    let mode = std::fs::metadata(i.path("keys/ed.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // -p prints the same record again; a second key in the same file is refused.
    let again = i.run(
        "dkimkey",
        &["-p", "-d", "example.test", "-s", "ed", "keys/ed.pem"],
        b"",
    );
    assert_eq!(text(&again.stdout), text(&ed.stdout));
    let clash = i.run(
        "dkimkey",
        &["-d", "example.test", "-s", "ed", "keys/ed.pem"],
        b"",
    );
    assert!(!clash.status.success());
    // A key for the host name: qrun's failure notices (From:
    // MAILER-DAEMON@mail.test) are signed with it.
    let host = i.run(
        "dkimkey",
        &["-d", "mail.test", "-s", "b", "keys/host.pem"],
        b"",
    );
    assert!(host.status.success(), "{}", text(&host.stderr));
    let keys = format!(
        "ed._domainkey.example.test\t{}\nrsa._domainkey.example.test\t{}\nb._domainkey.mail.test\t{}\n",
        record_of(&text(&ed.stdout)),
        record_of(&text(&rsa.stdout)),
        record_of(&text(&host.stdout))
    );
    i.write("keys.txt", &keys);
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "[transport]\n\"sink.test\" = \"[127.0.0.1]:{}\"\n[[dkim.key]]\ndomain = \"example.test\"\nselector = \"ed\"\nfile = \"keys/ed.pem\"\n[[dkim.key]]\ndomain = \"example.test\"\nselector = \"rsa\"\nfile = \"keys/rsa.pem\"\nexpire = \"7d\"\n[[dkim.key]]\ndomain = \"mail.test\"\nselector = \"b\"\nfile = \"keys/host.pem\"\n",
        sink.port
    ));
    i.write("aliases", "postmaster: ann\nfwd: ok-fwd@sink.test\n");
    i.init_spool();
    let long_body = "y".repeat(2500);
    let long_head = "z".repeat(1500);
    let messages = [
        "From: Ann <ann@example.test>\nTo: ok-1@sink.test\nSubject: plain\n\n.\n..two dots\n.leading dot\nend\n".to_string(),
        "From: ann@example.test\nTo: ok-2@sink.test\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Köln, 東京\n".to_string(),
        format!("From: ann@news.example.test\nTo: ok-3@sink.test\nSubject: long\nX-Long: {long_head}\n\n{long_body}\n.{long_body}\nshort\n"),
        "From: ann@other.test\nTo: ok-4@sink.test\nSubject: not ours\n\nno key for other.test\n".to_string(),
    ];
    for (n, m) in messages.iter().enumerate() {
        let out = i.sendmail(
            &["-f", "ann@example.test", &format!("ok-{}@sink.test", n + 1)],
            m.as_bytes(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Refused by the sink: the failure notice goes back to the sender there.
    let out = i.sendmail(
        &["-f", "ok-back@sink.test", "perm-x@sink.test"],
        b"From: ann@example.test\nSubject: refused\n\nno\n",
    );
    assert!(out.status.success());
    // A stranger's message, forwarded by an alias: never signed.
    i.write(
        "fwd.eml",
        "From: someone@example.test\nSubject: forwarded\n\nfrom outside\n",
    );
    let (out, _) = smtp_session(
        &i,
        "192.0.2.9",
        "c.test",
        "someone@example.test",
        "fwd@mail.test",
        &[i.path("fwd.eml")],
    );
    assert!(out.contains("queued as"), "{out}");
    let q = i.qrun_once();
    let log = text(&q.stderr);
    i.qrun_once();
    assert!(
        log.contains("DKIM-Signature field added (s=ed, d=example.test, a=ed25519-sha256)"),
        "{log}"
    );
    assert!(
        log.contains("DKIM-Signature field added (s=rsa, d=example.test, a=rsa-sha256)"),
        "{log}"
    );
    assert!(wait_for(std::time::Duration::from_secs(20), || sink
        .received()
        .len()
        == 6));
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&sink.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        v.sort();
        v
    };
    let mut args = vec![i.path("keys.txt").to_str().unwrap().to_string()];
    args.extend(files.iter().map(|p| p.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let verdicts = debian_python("dkim_check.py", &args);
    let by_subject: HashMap<String, String> = files
        .iter()
        .zip(verdicts.lines())
        .map(|(p, v)| {
            let j = std::fs::read_to_string(p).unwrap();
            let subject = j
                .split("Subject: ")
                .nth(1)
                .and_then(|s| s.split("\\r\\n").next())
                .unwrap_or("")
                .to_string();
            (
                subject,
                v.split_once(' ').map(|x| x.1).unwrap_or("").to_string(),
            )
        })
        .collect();
    for s in ["plain", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "long"] {
        assert_eq!(
            by_subject.get(s).map(String::as_str),
            Some("pass pass"),
            "dkimpy on {s}: {by_subject:?}"
        );
    }
    assert_eq!(by_subject["not ours"], "unsigned");
    assert_eq!(
        by_subject["Undelivered Mail Returned to Sender"], "pass",
        "{by_subject:?}"
    );
    assert_eq!(by_subject["forwarded"], "unsigned");
    // The body line really was broken by remote, the header folded.
    let long = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|j| j.contains("Subject: long"))
        .unwrap();
    assert!(
        long.contains("\\r\\n zzz") || long.contains(&format!("{}\\r\\n ", "z".repeat(20))),
        "header folded"
    );
    // OpenDKIM, in its test mode, with the keys as test data.
    i.write(
        "opendkim.conf",
        &format!(
            "Mode v\nTestPublicKeys {}\nSyslog no\nAlwaysAddARHeader yes\n",
            i.path("keys.txt").display()
        ),
    );
    for p in &files {
        let j = std::fs::read_to_string(p).unwrap();
        if !j.contains("DKIM-Signature") {
            continue;
        }
        let eml = p.with_extension("eml");
        let content = debian_python_inline(
            "import json,sys; sys.stdout.buffer.write(json.load(open(sys.argv[1]))['content'].encode('utf-8','surrogateescape'))",
            p,
        );
        std::fs::write(&eml, content).unwrap();
        let o = Command::new(opendkim)
            .arg("-vvv")
            .arg("-x")
            .arg(i.path("opendkim.conf"))
            .arg("-t")
            .arg(&eml)
            .output()
            .unwrap();
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        // Its Authentication-Results field (shown with -vvv) has one
        // result per signature.
        if j.contains("MAILER-DAEMON") {
            continue;
        }
        for sel in ["ed", "rsa"] {
            let ok = all.split(';').any(|r| {
                r.trim().starts_with("dkim=pass") && r.contains(&format!("header.s={sel} "))
            });
            assert!(ok, "OpenDKIM on {} ({sel}): {all}", eml.display());
        }
    }
}

/// debian_python_inline - a one-line script with one file argument; raw stdout.
fn debian_python_inline(code: &str, arg: &Path) -> Vec<u8> {
    let o = Command::new(DEBIAN_PYTHON)
        .args(["-c", code])
        .arg(arg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    o.stdout
}

/// A message that waits for a retry keeps its signature: the second
/// attempt sends the bytes the first sent, from spool/dkim/ID.
#[test]
fn a_retry_sends_the_same_signature() {
    let out = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .unwrap();
    assert!(out.success(), "aiosmtpd is needed (pip install aiosmtpd)");
    let mut i = Instance::new();
    i.write("keys/.keep", "");
    let ed = i.run(
        "dkimkey",
        &["-d", "example.test", "-s", "ed", "keys/ed.pem"],
        b"",
    );
    assert!(ed.status.success(), "{}", text(&ed.stderr));
    let sink = Sink::start(&i.path("sink"), &[]);
    i.write_config(&format!(
        "[transport]\n\"sink.test\" = \"[127.0.0.1]:{}\"\n[[dkim.key]]\ndomain = \"example.test\"\nselector = \"ed\"\nfile = \"keys/ed.pem\"\n",
        sink.port
    ));
    i.init_spool();
    let m = "From: ann@example.test\nSubject: twice\n\nbody\n";
    let out = i.sendmail(
        &[
            "-f",
            "ann@example.test",
            "ok-a@sink.test",
            "temp-b@sink.test",
        ],
        m.as_bytes(),
    );
    assert!(out.status.success());
    i.qrun_once();
    let ids = i.queue_files();
    assert_eq!(ids.len(), 1, "temp-b waits");
    let stored = std::fs::read_to_string(i.path(&format!("spool/dkim/{}", ids[0]))).unwrap();
    assert!(
        stored.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
        "{stored}"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    i.qrun_once();
    let again = std::fs::read_to_string(i.path(&format!("spool/dkim/{}", ids[0]))).unwrap();
    assert_eq!(stored, again);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let t = stored
        .split("t=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap();
    assert!(got[0].contains(&format!(" t={t};")), "{}\n{stored}", got[0]);
    // Deleting the message takes its signature along.
    let del = i.run("qrun", &["--delete", &ids[0]], b"");
    assert!(del.status.success(), "{}", text(&del.stderr));
    assert!(!i.path(&format!("spool/dkim/{}", ids[0])).exists());
}
