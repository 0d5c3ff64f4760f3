//! dkim_tags - posthorn-mailauth's fuzzing::dkim_tags on arbitrary octets (text a
//! stranger controls): it returns, never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posthorn_mailauth::fuzzing::dkim_tags(data));
