//! spf_record - posthorn-mailauth's fuzzing::spf_record on arbitrary octets (text a
//! stranger controls): it returns, never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posthorn_mailauth::fuzzing::spf_record(data));
