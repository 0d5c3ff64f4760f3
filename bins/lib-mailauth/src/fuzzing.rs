//! fuzzing - one entry point per fuzz target (fuzz/fuzz_targets), so the
//! targets stay one call each: the parsers of strangers' text, driven
//! with arbitrary octets, must return, never panic or hang.

use crate::{Zone, dkim, dmarc, header, key::Algorithm, spf, tags};
use std::net::IpAddr;

/// dkim_tags - a DKIM-Signature value and a key record.
pub fn dkim_tags(data: &[u8]) {
    let t = String::from_utf8_lossy(data);
    let _ = tags::parse(&t);
    let _ = dkim::parse_signature(&t);
    for a in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
        let _ = dkim::parse_key(&t, a);
    }
}

/// dkim_message - a whole message verified against an empty DNS (every
/// signature parsed, every body hash computed), its From: read.
pub fn dkim_message(data: &[u8]) {
    let _ = dkim::verify(data, &Zone::default(), 0);
    let (fields, _) = header::split(data);
    for f in fields.iter().filter(|f| f.is("from")) {
        let _ = header::from_domains(&f.text());
    }
    let _ = crate::ar::authserv_id(&String::from_utf8_lossy(data));
}

/// spf_record - an SPF record parsed, then evaluated as the policy of
/// fuzz.test for two clients (macros, mechanisms, the limits).
pub fn spf_record(data: &[u8]) {
    let t = String::from_utf8_lossy(data);
    let _ = spf::parse_check(&t);
    let mut z = Zone::default();
    z.txt("fuzz.test", &t);
    for ip in ["192.0.2.1", "2001:db8::1"] {
        if let Ok(ip) = ip.parse::<IpAddr>() {
            let _ = spf::check_mailfrom(&z, ip, "a.b@fuzz.test", "h.test", "mx.test", 0);
        }
    }
}

/// dmarc_record - a DMARC record parsed and applied.
pub fn dmarc_record(data: &[u8]) {
    let t = String::from_utf8_lossy(data);
    let _ = dmarc::parse_record(&t);
    let mut z = Zone::default();
    z.txt("_dmarc.fuzz.test", &t);
    let from = vec!["fuzz.test".to_string()];
    let _ = dmarc::check(
        &z,
        &dmarc::Evidence {
            from: &from,
            spf: spf::SpfResult::Fail,
            spf_domain: "x.test",
            dkim: &[],
            roll: 50,
        },
    );
}
