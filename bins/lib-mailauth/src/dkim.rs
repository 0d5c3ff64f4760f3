//! dkim - DomainKeys Identified Mail (RFC 6376), with Ed25519-SHA256
//! (RFC 8463) and RSA-SHA256; RSA-SHA1 is refused (RFC 8301).
//!
//! Verifying distrusts the signature, the key record and the message:
//! - at most MAX_SIGNATURES signatures are checked (each costs a lookup);
//! - h= must name From; i= must be in d=; x= must not have passed (nor
//!   come before t=); l= is honoured as RFC 6376 3.5 allows (the hash
//!   covers only that much of the body, and an l= longer than the body is
//!   a failure), and the result says `l=` was used;
//! - keys: v=DKIM1 if present, k= and h= must allow the algorithm, s= must
//!   allow email, an empty p= is a revoked key, `t=s` makes i= exactly d=,
//!   RSA keys under 1024 bits are refused (RFC 8301);
//! - any DNS failure is temperror, never fail.
//!
//! Signing makes the header list of RFC 6376 5.4.1, each present field
//! signed as often as it occurs, and From plus the fields a reader sees
//! (Subject, Date, To, Cc, Reply-To) signed once more than they occur
//! (over-signing: no one can add another later without breaking it).

use crate::canon::{self, Canon};
use crate::header::{self, Field};
use crate::key::{Algorithm, MIN_VERIFY_BITS, PrivateKey, PublicKey};
use crate::{Dns, Txt, tags};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest;

/// Most signatures verified on one message; the rest are not looked at.
pub const MAX_SIGNATURES: usize = 8;

/// A parsed DKIM-Signature field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub b: Vec<u8>,
    pub bh: Vec<u8>,
    pub header_canon: Canon,
    pub body_canon: Canon,
    /// The signing domain, lower case.
    pub d: String,
    /// The signed header names, lower case, in order.
    pub h: Vec<String>,
    /// The agent or user identifier (default "@" d).
    pub i: String,
    pub l: Option<u64>,
    pub s: String,
    pub t: Option<u64>,
    pub x: Option<u64>,
}

/// How one signature came out (RFC 8601 2.7.1's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The signature or the body hash did not verify.
    Fail(String),
    /// The signature could not be checked now (DNS).
    TempError(String),
    /// The signature or its key is broken, absent or unacceptable.
    PermError(String),
}

/// One signature's result, with what Authentication-Results reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// d=, s=, i=, a= when the signature parsed that far.
    pub d: String,
    pub s: String,
    pub i: String,
    pub a: String,
    /// The first characters of b= (RFC 6008 header.b).
    pub b_prefix: String,
    /// The key says the domain is testing DKIM (t=y).
    pub testing: bool,
    /// The signature had l=.
    pub length_limited: bool,
}

impl Outcome {
    /// passed - a pass.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// parse_signature - a DKIM-Signature field's value.
pub fn parse_signature(value: &str) -> Result<Signature, String> {
    let t = tags::parse(value)?;
    let get = |n: &str| tags::get(&t, n);
    let need = |n: &str| get(n).ok_or_else(|| format!("no {n}= tag"));
    if need("v")? != "1" {
        return Err("v= is not 1".into());
    }
    let algorithm = match need("a")?.to_ascii_lowercase().as_str() {
        "rsa-sha256" => Algorithm::RsaSha256,
        "ed25519-sha256" => Algorithm::Ed25519Sha256,
        "rsa-sha1" => return Err("rsa-sha1 is not accepted (RFC 8301)".into()),
        a => return Err(format!("unknown algorithm {a}")),
    };
    let b64 = |n: &str| -> Result<Vec<u8>, String> {
        B64.decode(tags::strip_ws(need(n)?))
            .map_err(|_| format!("{n}= is not base64"))
    };
    let b = b64("b")?;
    let bh = b64("bh")?;
    if b.is_empty() || bh.len() != 32 {
        return Err("empty b= or bh= of the wrong length".into());
    }
    let (header_canon, body_canon) = match get("c") {
        None => (Canon::Simple, Canon::Simple),
        Some(c) => canon::parse_c(c).ok_or_else(|| format!("unknown canonicalization {c}"))?,
    };
    let d = need("d")?.trim_end_matches('.').to_ascii_lowercase();
    if !crate::is_domain(&d) {
        return Err(format!("d={d} is not a domain"));
    }
    let h: Vec<String> = tags::strip_ws(need("h")?)
        .split(':')
        .map(str::to_ascii_lowercase)
        .collect();
    if h.iter().any(String::is_empty) || !h.iter().any(|n| n == "from") {
        return Err("h= does not sign From".into());
    }
    let i = match get("i") {
        Some(i) => {
            let dom = i
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .ok_or("i= has no @")?;
            if dom != d && !dom.ends_with(&format!(".{d}")) {
                return Err("i= is not within d=".into());
            }
            i.to_string()
        }
        None => format!("@{d}"),
    };
    let num = |n: &str| -> Result<Option<u64>, String> {
        match get(n) {
            None => Ok(None),
            Some(v) => {
                // At most 12 digits (RFC 6376 3.5); more is read as "far".
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{n}= is not a number"));
                }
                Ok(Some(v.parse().unwrap_or(u64::MAX)))
            }
        }
    };
    if let Some(q) = get("q")
        && !q
            .split(':')
            .any(|m| m.trim().eq_ignore_ascii_case("dns/txt"))
    {
        return Err(format!("unknown query method q={q}"));
    }
    let s = need("s")?.to_ascii_lowercase();
    if s.is_empty() || !s.split('.').all(|l| !l.is_empty() && crate::is_domain(l)) {
        return Err("bad selector".into());
    }
    let sig = Signature {
        algorithm,
        b,
        bh,
        header_canon,
        body_canon,
        d,
        h,
        i,
        l: num("l")?,
        s,
        t: num("t")?,
        x: num("x")?,
    };
    if let (Some(t), Some(x)) = (sig.t, sig.x)
        && x < t
    {
        return Err("x= is before t=".into());
    }
    Ok(sig)
}

/// A key record (RFC 6376 3.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: PublicKey,
    pub testing: bool,
    pub strict: bool,
}

/// parse_key - a key record for a signature of algorithm `a`; Err is a
/// permanent error, with "revoked" for an empty p=.
pub fn parse_key(text: &str, a: Algorithm) -> Result<KeyRecord, String> {
    let t = tags::parse(text)?;
    if let Some((n, v)) = t.first()
        && n == "v"
        && v != "DKIM1"
    {
        return Err("v= is not DKIM1".into());
    }
    if t.iter().skip(1).any(|(n, _)| n == "v") {
        return Err("v= is not the first tag".into());
    }
    let get = |n: &str| tags::get(&t, n);
    if let Some(h) = get("h")
        && !h
            .split(':')
            .any(|x| x.trim().eq_ignore_ascii_case("sha256"))
    {
        return Err("the key does not allow sha256 (h=)".into());
    }
    let k = get("k").unwrap_or("rsa").to_ascii_lowercase();
    if k != a.k() {
        return Err(format!("key type k={k} does not match a={}", a.name()));
    }
    if let Some(s) = get("s")
        && !s
            .split(':')
            .any(|x| x.trim() == "*" || x.trim().eq_ignore_ascii_case("email"))
    {
        return Err("the key is not for email (s=)".into());
    }
    let flags: Vec<String> = get("t")
        .unwrap_or("")
        .split(':')
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let p = tags::strip_ws(get("p").ok_or("no p= tag")?);
    if p.is_empty() {
        return Err("the key is revoked (empty p=)".into());
    }
    let der = B64.decode(p).map_err(|_| "p= is not base64".to_string())?;
    let key = match a {
        Algorithm::RsaSha256 => PublicKey::rsa_from_der(&der).ok_or("p= is not an RSA key")?,
        Algorithm::Ed25519Sha256 => {
            PublicKey::Ed25519(der.try_into().map_err(|_| "p= is not an Ed25519 key")?)
        }
    };
    if matches!(key, PublicKey::Rsa { .. }) && key.bits() < MIN_VERIFY_BITS {
        return Err(format!("the RSA key has only {} bits", key.bits()));
    }
    Ok(KeyRecord {
        key,
        testing: flags.iter().any(|f| f == "y"),
        strict: flags.iter().any(|f| f == "s"),
    })
}

/// without_b - a DKIM-Signature field with b='s value (and the white
/// space around it) removed, as it is hashed.
fn without_b(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
    let mut out = raw[..colon].to_vec();
    let value = &raw[colon..];
    let mut first = true;
    for spec in value.split(|&b| b == b';') {
        if !first {
            out.push(b';');
        }
        first = false;
        let eq = spec.iter().position(|&b| b == b'=');
        let is_b = eq.is_some_and(|e| {
            spec[..e]
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .eq(b"b".iter())
        });
        match (is_b, eq) {
            (true, Some(e)) => out.extend_from_slice(&spec[..=e]),
            _ => out.extend_from_slice(spec),
        }
    }
    out
}

/// header_hash_input - what the signature signs: the h= fields picked
/// from the bottom up, then the signature field itself (b= emptied, no
/// final CRLF).
fn header_input(fields: &[Field], h: &[String], c: Canon, sig_field: &[u8]) -> Vec<u8> {
    let mut used = vec![false; fields.len()];
    let mut data = Vec::new();
    for name in h {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].is(name))
        {
            used[i] = true;
            data.extend(canon::header(fields[i].raw, c));
        }
    }
    let mut last = canon::header(sig_field, c);
    last.truncate(last.len() - 2);
    data.extend(last);
    data
}

/// signed_data - what the key signs: the data itself for RSA (ring
/// hashes it), its SHA-256 hash for Ed25519 (RFC 8463 3).
fn signed_data(a: Algorithm, data: &[u8]) -> Vec<u8> {
    match a {
        Algorithm::RsaSha256 => data.to_vec(),
        Algorithm::Ed25519Sha256 => digest::digest(&digest::SHA256, data).as_ref().to_vec(),
    }
}

/// A body hash computed once: (canonicalization, l=), hash, length.
type BodyHash = ((Canon, Option<u64>), Vec<u8>, u64);

/// verify - every DKIM-Signature of `msg` (up to MAX_SIGNATURES), as of
/// Unix time `now`.
pub fn verify(msg: &[u8], dns: &dyn Dns, now: u64) -> Vec<Outcome> {
    let (fields, body_at) = header::split(msg);
    let body = &msg[body_at..];
    let mut hashes: Vec<BodyHash> = Vec::new();
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| f.is("dkim-signature")) {
        if out.len() >= MAX_SIGNATURES {
            break;
        }
        out.push(verify_one(f, &fields, body, dns, now, &mut hashes));
    }
    out
}

/// verify_one - one signature; body hashes are shared between signatures
/// with the same canonicalization and length.
fn verify_one(
    f: &Field,
    fields: &[Field],
    body: &[u8],
    dns: &dyn Dns,
    now: u64,
    hashes: &mut Vec<BodyHash>,
) -> Outcome {
    let value = f.text();
    let mut o = Outcome {
        verdict: Verdict::PermError(String::new()),
        d: String::new(),
        s: String::new(),
        i: String::new(),
        a: String::new(),
        b_prefix: String::new(),
        testing: false,
        length_limited: false,
    };
    // Report what can be read even from a bad signature.
    if let Ok(t) = tags::parse(&value) {
        let g = |n| tags::get(&t, n).unwrap_or("").to_string();
        o.d = g("d").to_ascii_lowercase();
        o.s = g("s");
        o.i = g("i");
        o.a = g("a").to_ascii_lowercase();
        o.b_prefix = tags::strip_ws(&g("b")).chars().take(8).collect();
    }
    let sig = match parse_signature(&value) {
        Ok(s) => s,
        Err(e) => {
            o.verdict = Verdict::PermError(e);
            return o;
        }
    };
    o.i = sig.i.clone();
    o.length_limited = sig.l.is_some();
    if let Some(x) = sig.x
        && x < now
    {
        o.verdict = Verdict::PermError("signature expired".into());
        return o;
    }
    let name = format!("{}._domainkey.{}", sig.s, sig.d);
    let key = match crate::txt(dns, &name) {
        Err(e) => {
            o.verdict = Verdict::TempError(format!("key lookup: {e}"));
            return o;
        }
        Ok(Txt::NxDomain | Txt::NoData) => {
            o.verdict = Verdict::PermError("no key for signature".into());
            return o;
        }
        Ok(Txt::Found(recs)) => {
            // The first record that parses as a key; else the first's error.
            let mut first_err = None;
            let mut key = None;
            for r in &recs {
                match parse_key(&String::from_utf8_lossy(r), sig.algorithm) {
                    Ok(k) => {
                        key = Some(k);
                        break;
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match key {
                Some(k) => k,
                None => {
                    o.verdict = Verdict::PermError(first_err.unwrap_or_else(|| "no key".into()));
                    return o;
                }
            }
        }
    };
    o.testing = key.testing;
    if key.strict {
        let idom = sig.i.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !idom.eq_ignore_ascii_case(&sig.d) {
            o.verdict = Verdict::PermError("the key forbids subdomains in i= (t=s)".into());
            return o;
        }
    }
    // RFC 6376 8.15: a From: field the signature does not cover may be
    // the one a reader sees (RFC 5322 allows one From: only).
    let signed_from = sig.h.iter().filter(|n| *n == "from").count();
    if fields.iter().filter(|f| f.is("from")).count() > signed_from {
        o.verdict = Verdict::Fail("a From: field is not signed".into());
        return o;
    }
    let want = (sig.body_canon, sig.l);
    let (bh, len) = match hashes.iter().find(|(k, _, _)| *k == want) {
        Some((_, h, n)) => (h.clone(), *n),
        None => {
            let (h, n) = canon::body_hash(body, sig.body_canon, sig.l);
            hashes.push((want, h.clone(), n));
            (h, n)
        }
    };
    if let Some(l) = sig.l
        && l > len
    {
        o.verdict = Verdict::PermError("l= is longer than the body".into());
        return o;
    }
    if bh != sig.bh {
        o.verdict = Verdict::Fail("body hash did not verify".into());
        return o;
    }
    let data = header_input(fields, &sig.h, sig.header_canon, &without_b(f.raw));
    o.verdict = if key.key.verify(&signed_data(sig.algorithm, &data), &sig.b) {
        Verdict::Pass
    } else {
        Verdict::Fail("signature did not verify".into())
    };
    o
}

/// The header fields signed when present (RFC 6376 5.4.1, and the MIME
/// and Message-ID fields that say what the message is).
const SIGNED: &[&str] = &[
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// Signed once more than they occur, so none can be added.
const OVERSIGNED: &[&str] = &["from", "reply-to", "subject", "date", "to", "cc"];

/// How to sign.
#[derive(Debug)]
pub struct Signer<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    pub key: &'a PrivateKey,
    pub header_canon: Canon,
    pub body_canon: Canon,
    /// Seconds after t= at which the signature expires (x=); None for none.
    pub expire: Option<u64>,
}

/// sign - a DKIM-Signature field for `msg` at Unix time `now`, folded
/// under 78 columns, lines ending in LF, the last one too.
pub fn sign(msg: &[u8], s: &Signer, now: u64) -> Result<String, String> {
    let (fields, body_at) = header::split(msg);
    if !fields.iter().any(|f| f.is("from")) {
        return Err("the message has no From: field".into());
    }
    let mut h: Vec<String> = Vec::new();
    for name in SIGNED {
        let n = fields.iter().filter(|f| f.is(name)).count();
        let extra = usize::from(OVERSIGNED.contains(name) && (n > 0 || *name == "from"));
        for _ in 0..n + extra {
            h.push((*name).to_string());
        }
    }
    let (bh, _) = canon::body_hash(&msg[body_at..], s.body_canon, None);
    let mut tags = vec![
        "v=1".to_string(),
        format!("a={}", s.key.algorithm().name()),
        format!("c={}/{}", s.header_canon.name(), s.body_canon.name()),
        format!("d={}", s.domain),
        format!("s={}", s.selector),
        format!("t={now}"),
    ];
    if let Some(x) = s.expire {
        tags.push(format!("x={}", now.saturating_add(x)));
    }
    tags.push(format!("h={}", h.join(":")));
    tags.push(format!("bh={}", B64.encode(bh)));
    tags.push("b=".to_string());
    // Fold between tags (and inside h= at colons) under 78 columns.
    let mut field = String::from("DKIM-Signature:");
    let mut col = field.len();
    for (n, t) in tags.iter().enumerate() {
        let piece = if n + 1 < tags.len() {
            format!("{t};")
        } else {
            t.clone()
        };
        let pieces: Vec<String> = if t.starts_with("h=") && piece.len() > 70 {
            let mut v = Vec::new();
            let mut cur = String::new();
            for part in piece.split_inclusive(':') {
                if cur.len() + part.len() > 70 {
                    v.push(std::mem::take(&mut cur));
                }
                cur.push_str(part);
            }
            v.push(cur);
            v
        } else {
            vec![piece]
        };
        for (k, p) in pieces.iter().enumerate() {
            if col + 1 + p.len() > 76 {
                field.push_str("\n\t");
                col = 8;
            } else if k == 0 {
                field.push(' ');
                col += 1;
            } else {
                // A fold inside h= needs white space; FWS is allowed there.
                field.push_str("\n\t");
                col = 8;
            }
            field.push_str(p);
            col += p.len();
        }
    }
    let data = header_input(&fields, &h, s.header_canon, field.as_bytes());
    let sig = s.key.sign(&signed_data(s.key.algorithm(), &data))?;
    let b = B64.encode(sig);
    // b= is last: its folds vanish with its value when it is hashed.
    let mut rest = b.as_str();
    let first = 76usize.saturating_sub(col).max(8).min(rest.len());
    field.push_str(&rest[..first]);
    rest = &rest[first..];
    while !rest.is_empty() {
        let n = rest.len().min(68);
        field.push_str("\n\t");
        field.push_str(&rest[..n]);
        rest = &rest[n..];
    }
    field.push('\n');
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Zone;
    use crate::key::generate_ed25519;

    const MSG: &[u8] = b"From: Joe SixPack <joe@football.example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\nSubject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\nMessage-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n\r\n";

    /// RFC 8463 Appendix A: the Ed25519 and RSA signatures on the same
    /// message, with the published keys, verify.
    #[test]
    fn rfc8463_appendix_a() {
        let ed = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n subject : date : message-id : from : subject : date;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n";
        let rsa = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n date : message-id : from : subject : date;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n";
        let mut z = Zone::default();
        z.txt(
            "brisbane._domainkey.football.example.com",
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        );
        z.txt("test._domainkey.football.example.com", "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
        let both = [ed.as_bytes(), rsa.as_bytes(), MSG].concat();
        let r = verify(&both, &z, 1_600_000_000);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(Outcome::passed), "{r:?}");
        assert_eq!(r[0].a, "ed25519-sha256");
        // The RSA key is 1024 bits: accepted to verify (RFC 8301 allows it).
        let mut changed = both.clone();
        let at = changed.len() - 6;
        changed[at] = b'X';
        let r = verify(&changed, &z, 1_600_000_000);
        assert!(
            r.iter().all(|o| matches!(o.verdict, Verdict::Fail(_))),
            "{r:?}"
        );
    }

    /// RFC 6376 Appendix A.2's example message and signature, with
    /// Appendix C's key (the errata-corrected body hash and signature).
    #[test]
    fn rfc6376_appendix_a() {
        let m = "DKIM-Signature: v=1; a=rsa-sha256; s=brisbane; d=example.com;\r\n      c=simple/simple; q=dns/txt; i=joe@football.example.com;\r\n      h=Received : From : To : Subject : Date : Message-ID;\r\n      bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n      b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB\r\n        4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut\r\n        KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV\r\n        4bmp/YzhwvcubU4=;\r\nReceived: from client1.football.example.com  [192.0.2.1]\r\n      by submitserver.example.com with SUBMISSION;\r\n      Fri, 11 Jul 2003 21:01:54 -0700 (PDT)\r\nFrom: Joe SixPack <joe@football.example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\nSubject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\nMessage-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\nHi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n";
        let mut z = Zone::default();
        z.txt("brisbane._domainkey.example.com", "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB");
        let r = verify(m.as_bytes(), &z, 1_600_000_000);
        assert_eq!(r.len(), 1);
        assert!(r[0].passed(), "{r:?}");
    }

    #[test]
    fn sign_then_verify_and_key_rules() {
        let k = PrivateKey::from_pem(generate_ed25519().unwrap().as_bytes()).unwrap();
        let s = Signer {
            domain: "example.org",
            selector: "sel",
            key: &k,
            header_canon: Canon::Relaxed,
            body_canon: Canon::Relaxed,
            expire: Some(3600),
        };
        let msg = b"From: a@example.org\nSubject: hi\n\nbody  \n\n\n";
        let field = sign(msg, &s, 1000).unwrap();
        assert!(field.lines().all(|l| l.len() <= 78), "{field}");
        assert!(field.contains("h=from:subject:subject:from;") || field.contains("h=from:from"));
        let signed = [field.as_bytes(), msg].concat();
        let mut z = Zone::default();
        z.txt("sel._domainkey.example.org", &k.record());
        let r = verify(&signed, &z, 2000);
        assert!(r[0].passed(), "{r:?}");
        // Expired, no key, revoked, wrong type, not for email, t=s.
        assert!(
            matches!(verify(&signed, &z, 10_000)[0].verdict, Verdict::PermError(ref e) if e.contains("expired"))
        );
        let none = Zone::default();
        assert!(matches!(
            verify(&signed, &none, 2000)[0].verdict,
            Verdict::PermError(_)
        ));
        for (rec, why) in [
            ("v=DKIM1; k=ed25519; p=", "revoked"),
            ("v=DKIM1; k=rsa; p=AAAA", "match"),
            (&format!("{}; s=tlsrpt", k.record()), "email"),
            (&format!("{}; h=sha1", k.record()), "sha256"),
            (&format!("v=DKIM2; k=ed25519; p={}", k.public_p()), "DKIM1"),
        ] {
            let mut z = Zone::default();
            z.txt("sel._domainkey.example.org", rec);
            match &verify(&signed, &z, 2000)[0].verdict {
                Verdict::PermError(e) => assert!(e.contains(why), "{e} / {why}"),
                v => panic!("{rec}: {v:?}"),
            }
        }
        let mut z = Zone::default();
        z.fail("sel._domainkey.example.org", posthorn_dns::TYPE_TXT);
        assert!(matches!(
            verify(&signed, &z, 2000)[0].verdict,
            Verdict::TempError(_)
        ));
        // A From: added above a signed (over-signed) one breaks it.
        let mut z = Zone::default();
        z.txt(
            "sel._domainkey.example.org",
            &format!("{}; t=y:s", k.record()),
        );
        let added = [b"From: evil@example.org\n".as_slice(), &signed].concat();
        assert!(matches!(
            verify(&added, &z, 2000)[0].verdict,
            Verdict::Fail(_)
        ));
        let r = verify(&signed, &z, 2000);
        assert!(r[0].passed() && r[0].testing);
    }

    #[test]
    fn length_limits() {
        let k = PrivateKey::from_pem(generate_ed25519().unwrap().as_bytes()).unwrap();
        let msg = b"From: a@example.org\n\nsigned part\n";
        // Sign by hand with l= the whole body, then append to the body.
        let (bh, len) = canon::body_hash(b"signed part\n", Canon::Simple, None);
        let mut field = format!(
            "DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=sel; l={len}; h=from; bh={}; b=",
            B64.encode(bh)
        );
        let (fields, _) = header::split(msg);
        let data = header_input(&fields, &["from".into()], Canon::Simple, field.as_bytes());
        field.push_str(
            &B64.encode(
                k.sign(&signed_data(Algorithm::Ed25519Sha256, &data))
                    .unwrap(),
            ),
        );
        field.push('\n');
        let mut z = Zone::default();
        z.txt("sel._domainkey.example.org", &k.record());
        let appended = [field.as_bytes(), msg, b"unsigned tail\n"].concat();
        let r = verify(&appended, &z, 0);
        assert!(r[0].passed() && r[0].length_limited, "{r:?}");
        // l= longer than the body fails.
        let cut = [field.as_bytes(), b"From: a@example.org\n\nsigned\n"].concat();
        assert!(
            matches!(verify(&cut, &z, 0)[0].verdict, Verdict::PermError(ref e) if e.contains("longer"))
        );
    }

    #[test]
    fn bad_signatures_are_permerrors() {
        for (v, why) in [
            (
                "v=1; a=rsa-sha1; b=AA==; bh=AA==; d=x.test; h=from; s=s",
                "sha1",
            ),
            (
                "v=1; a=rsa-sha256; b=AA==; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; d=x.test; h=to; s=s",
                "From",
            ),
            (
                "v=1; a=rsa-sha256; b=AA==; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; d=x.test; h=from; s=s; i=@y.test",
                "within",
            ),
            (
                "v=1; a=rsa-sha256; b=AA==; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; d=x.test; h=from; s=s; t=5; x=4",
                "before",
            ),
            ("v=2; a=rsa-sha256", "v="),
        ] {
            let e = parse_signature(v).unwrap_err();
            assert!(e.contains(why), "{v}: {e}");
        }
        assert_eq!(
            without_b(b"DKIM-Signature: a=1; b= ab\r\n cd ; bh=xy; b=zz"),
            b"DKIM-Signature: a=1; b=; bh=xy; b="
        );
    }
}
