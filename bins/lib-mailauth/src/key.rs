//! key - DKIM keys: private keys from PEM files for signing, public keys
//! from DNS records for verifying, and the record to publish.
//!
//! Private keys: PKCS#8 ("PRIVATE KEY", RSA or Ed25519, as `openssl
//! genpkey` and dkimkey(8) write them) or PKCS#1 ("RSA PRIVATE KEY", as
//! `opendkim-genkey` writes them). RSA keys are 2048 to 4096 bits to sign
//! (RFC 8301 says at least 1024 to verify, 2048 to sign).
//!
//! Public keys in p=: RSA as SubjectPublicKeyInfo (what everyone
//! publishes) or bare RSAPublicKey (what RFC 6376 3.6.1 literally says);
//! Ed25519 as the 32 raw octets (RFC 8463 4.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, RsaKeyPair};
use std::fmt;

/// Smallest RSA key we believe a signature from (RFC 8301 3.2).
pub const MIN_VERIFY_BITS: usize = 1024;

/// The signing algorithms (a=).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// k - the key type's name in a key record.
    pub fn k(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

/// A private key to sign with.
pub enum PrivateKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, [redacted])", self.algorithm().name())
    }
}

impl PrivateKey {
    /// from_pem - the first private key in a PEM file.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_string())?;
        for (label, der) in pem_blocks(text) {
            return match label.as_str() {
                "PRIVATE KEY" => {
                    if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                        Ok(PrivateKey::Ed25519(k))
                    } else {
                        RsaKeyPair::from_pkcs8(&der)
                            .map(PrivateKey::Rsa)
                            .map_err(|e| format!("not an Ed25519 or usable RSA key ({e}): RSA keys must have 2048 to 4096 bits"))
                    }
                }
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                    .map(PrivateKey::Rsa)
                    .map_err(|e| {
                        format!("not a usable RSA key ({e}): RSA keys must have 2048 to 4096 bits")
                    }),
                "ENCRYPTED PRIVATE KEY" => {
                    Err("the key is encrypted; give a key without a passphrase".into())
                }
                _ => continue,
            };
        }
        Err("no private key in the PEM file".into())
    }

    /// algorithm - what this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PrivateKey::Rsa(_) => Algorithm::RsaSha256,
            PrivateKey::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// bits - the key's size (256 for Ed25519).
    pub fn bits(&self) -> usize {
        match self {
            PrivateKey::Rsa(k) => k.public().modulus_len() * 8,
            PrivateKey::Ed25519(_) => 256,
        }
    }

    /// sign - the signature over `data` (for Ed25519, `data` is already
    /// the SHA-256 hash, as RFC 8463 3 says).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_string())?;
                Ok(sig)
            }
            PrivateKey::Ed25519(k) => Ok(k.sign(data).as_ref().to_vec()),
        }
    }

    /// public_p - the p= value to publish: base64 of the
    /// SubjectPublicKeyInfo for RSA, of the raw key for Ed25519.
    pub fn public_p(&self) -> String {
        match self {
            PrivateKey::Rsa(k) => B64.encode(spki_rsa(k.public().as_ref())),
            PrivateKey::Ed25519(k) => B64.encode(k.public_key().as_ref()),
        }
    }

    /// record - the DNS TXT record's text: "v=DKIM1; k=...; p=...".
    pub fn record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm().k(), self.public_p())
    }
}

/// generate_ed25519 - a new Ed25519 key as a PKCS#8 v1 PEM file (the
/// seed alone, RFC 8410, which `openssl pkey` and OpenDKIM read; ring's
/// own v2 form carries the public key too, and OpenSSL 3.0 refuses it).
pub fn generate_ed25519() -> Result<String, String> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| "no random numbers".to_string())?;
    // v2: 30 53 02 01 01 30 05 06 03 2b 65 70 04 22 04 20 <seed> a1 23 ...
    let seed = doc
        .as_ref()
        .get(16..48)
        .ok_or("unexpected PKCS#8 from ring")?;
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(seed);
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&v1).map_err(|_| "bad Ed25519 key".to_string())?;
    Ok(pem("PRIVATE KEY", &v1))
}

/// pem - DER as a PEM block, 64 columns.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// pem_blocks - every well-formed PEM block: (label, DER).
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            cur = Some((l.to_string(), String::new()));
        } else if let Some(l) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some((label, b)) = cur.take()
                && label == l
                && let Ok(der) = B64.decode(b.as_bytes())
            {
                out.push((label, der));
            }
        } else if let Some((_, b)) = cur.as_mut()
            && !line.contains(':')
        {
            b.push_str(line);
        }
    }
    out
}

/// der_len - a DER length.
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

/// spki_rsa - an RSAPublicKey wrapped as SubjectPublicKeyInfo.
fn spki_rsa(rsa_public_key: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    bits.extend(der_len(rsa_public_key.len() + 1));
    bits.push(0);
    bits.extend_from_slice(rsa_public_key);
    let mut out = vec![0x30];
    out.extend(der_len(ALG.len() + bits.len()));
    out.extend_from_slice(ALG);
    out.extend(bits);
    out
}

/// der_item - one DER item at the start of `p`: (tag, contents, rest).
fn der_item(p: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, p) = p.split_first()?;
    let (&l, mut p) = p.split_first()?;
    let len = if l < 0x80 {
        l as usize
    } else {
        let n = (l & 0x7f) as usize;
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for _ in 0..n {
            let (&b, rest) = p.split_first()?;
            len = len << 8 | b as usize;
            p = rest;
        }
        len
    };
    let contents = p.get(..len)?;
    Some((tag, contents, &p[len..]))
}

/// A public key from a key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, big-endian, leading zeros removed.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519([u8; 32]),
}

impl PublicKey {
    /// rsa_from_der - an RSA key from SubjectPublicKeyInfo or RSAPublicKey DER.
    pub fn rsa_from_der(der: &[u8]) -> Option<PublicKey> {
        let (tag, seq, rest) = der_item(der)?;
        if tag != 0x30 || !rest.is_empty() {
            return None;
        }
        let (t1, first, after) = der_item(seq)?;
        let rsa = if t1 == 0x30 {
            // SubjectPublicKeyInfo: the algorithm must be rsaEncryption.
            let (_, oid, _) = der_item(first)?;
            if oid != [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] {
                return None;
            }
            let (t, bits, _) = der_item(after)?;
            if t != 0x03 || bits.first() != Some(&0) {
                return None;
            }
            let (t, inner, _) = der_item(&bits[1..])?;
            if t != 0x30 {
                return None;
            }
            inner
        } else {
            seq
        };
        let (tn, n, rest) = der_item(rsa)?;
        let (te, e, _) = der_item(rest)?;
        if tn != 0x02 || te != 0x02 {
            return None;
        }
        let strip = |x: &[u8]| {
            let i = x.iter().position(|&b| b != 0).unwrap_or(x.len());
            x[i..].to_vec()
        };
        let (n, e) = (strip(n), strip(e));
        if n.is_empty() || e.is_empty() {
            return None;
        }
        Some(PublicKey::Rsa { n, e })
    }

    /// bits - the key's size.
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa { n, .. } => {
                n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
            }
            PublicKey::Ed25519(_) => 256,
        }
    }

    /// verify - whether `sig` is this key's signature over `data` (for
    /// Ed25519, the SHA-256 hash of the data).
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => {
                let params = if self.bits() >= 2048 {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, data, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(k) => signature::UnparsedPublicKey::new(&signature::ED25519, k)
                .verify(data, sig)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_round_trip_and_record() {
        let pem = generate_ed25519().unwrap();
        let k = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(k.algorithm(), Algorithm::Ed25519Sha256);
        assert!(k.record().starts_with("v=DKIM1; k=ed25519; p="));
        let raw: [u8; 32] = B64.decode(k.public_p()).unwrap().try_into().unwrap();
        let sig = k.sign(b"hash").unwrap();
        assert!(PublicKey::Ed25519(raw).verify(b"hash", &sig));
        assert!(!PublicKey::Ed25519(raw).verify(b"hasH", &sig));
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn rsa_public_keys_in_both_forms() {
        // RFC 6376 Appendix C's 1024-bit key, as SubjectPublicKeyInfo.
        let p = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB";
        let k = PublicKey::rsa_from_der(&B64.decode(p).unwrap()).unwrap();
        assert_eq!(k.bits(), 1024);
        let PublicKey::Rsa { n, e } = &k else {
            panic!()
        };
        assert_eq!(e, &[1, 0, 1]);
        // The same key as a bare RSAPublicKey.
        let der = B64.decode(p).unwrap();
        let bare = &der[22..];
        assert_eq!(
            PublicKey::rsa_from_der(bare),
            Some(PublicKey::Rsa {
                n: n.clone(),
                e: e.clone()
            })
        );
        assert!(PublicKey::rsa_from_der(b"\x30\x00").is_none());
        assert!(PublicKey::rsa_from_der(&der[..40]).is_none());
    }
}
