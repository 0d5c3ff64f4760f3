//! dmarc_record - posthorn-mailauth's fuzzing::dmarc_record on arbitrary octets (text a
//! stranger controls): it returns, never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| posthorn_mailauth::fuzzing::dmarc_record(data));
