//! The password check's request and answer (posthorn(7)): any octets,
//! never a panic; what decodes encodes back to the same octets, within
//! the bound; and a request built from any credentials decodes back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use posthorn_auth::request::{Answer, MAX_REQUEST, Request, Service};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(r.encode(), data);
        assert!(data.len() <= MAX_REQUEST);
        assert!(r.check || (r.password.is_empty() && r.authzid.is_empty()));
    }
    if let Ok(a) = Answer::decode(data) {
        assert_eq!(a.encode(), data);
    }
    // The same octets as a client's credentials: split at the first two
    // NULs into authzid, user and password, as SASL PLAIN does.
    let mut parts = data.splitn(3, |&c| c == 0);
    let authzid = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let user = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let password = parts.next().unwrap_or_default();
    let r = Request::new(Service::Imap, "PLAIN", "unknown[192.0.2.7]", &authzid, &user, password);
    let b = r.encode();
    assert!(b.len() <= MAX_REQUEST);
    assert_eq!(Request::decode(&b).as_ref(), Ok(&r));
});
