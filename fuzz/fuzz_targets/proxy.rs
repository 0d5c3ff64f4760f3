//! PROXY protocol v1/v2 headers: never a panic, never more bytes than given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, n))) = posthorn_net::proxy::parse(data) {
        assert!(n <= data.len());
    }
});
