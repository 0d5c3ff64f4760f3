//! bench - the cost per message of DKIM signing and verifying and of an
//! SPF check, in-process, with DNS answered from a table (no network):
//! what `make bench` reports beside OpenDKIM (scripts/bench-mailauth.sh).
//!
//! usage: bench N RSA-PEM-FILE

#![allow(clippy::unwrap_used, clippy::expect_used)]

use posthorn_mailauth::canon::Canon;
use posthorn_mailauth::dkim::{self, Signer};
use posthorn_mailauth::key::{PrivateKey, generate_ed25519};
use posthorn_mailauth::{Zone, spf};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rsa = PrivateKey::from_pem(&std::fs::read(&args[2]).expect("RSA key file")).unwrap();
    let ed = PrivateKey::from_pem(generate_ed25519().unwrap().as_bytes()).unwrap();
    // A 10 kB message, like a short mail with a signature and quoting.
    let mut msg = b"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\nSubject: bench\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <b@example.org>\r\n\r\n".to_vec();
    while msg.len() < 10_000 {
        msg.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    let mut z = Zone::default();
    z.txt("ed._domainkey.example.org", &ed.record());
    z.txt("rsa._domainkey.example.org", &rsa.record());
    z.txt(
        "example.org",
        "v=spf1 ip4:198.51.100.0/24 include:_spf.example.org -all",
    );
    z.txt("_spf.example.org", "v=spf1 ip4:192.0.2.0/24 -all");
    for (name, key) in [("ed25519-sha256", &ed), ("rsa-sha256 (2048)", &rsa)] {
        let sel = if name.starts_with("ed") { "ed" } else { "rsa" };
        let s = Signer {
            domain: "example.org",
            selector: sel,
            key,
            header_canon: Canon::Relaxed,
            body_canon: Canon::Relaxed,
            expire: None,
        };
        let t = Instant::now();
        let mut field = String::new();
        for _ in 0..n {
            field = dkim::sign(&msg, &s, 1_800_000_000).unwrap();
        }
        let sign = t.elapsed().as_secs_f64() / f64::from(n);
        let signed = [field.as_bytes(), &msg].concat();
        let t = Instant::now();
        for _ in 0..n {
            let r = dkim::verify(&signed, &z, 1_800_000_000);
            assert!(r[0].passed());
        }
        let verify = t.elapsed().as_secs_f64() / f64::from(n);
        println!(
            "posthorn {name:<18} sign {:>8.1} us/msg   verify {:>8.1} us/msg",
            sign * 1e6,
            verify * 1e6
        );
    }
    let ip = "192.0.2.9".parse().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let r = spf::check_mailfrom(&z, ip, "ann@example.org", "mx.example.org", "mx.test", 0);
        assert_eq!(r.result, spf::SpfResult::Pass);
    }
    println!(
        "posthorn SPF (include, 2 records)   check {:>8.1} us/msg (DNS from a table)",
        t.elapsed().as_secs_f64() / f64::from(n) * 1e6
    );
    std::fs::write("bench-message.eml", &msg).unwrap();
}
