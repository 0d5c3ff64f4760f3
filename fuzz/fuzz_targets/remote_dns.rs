//! remote_dns - remote's DNS answer parser on arbitrary packets (what any
//! host on the path can send): an answer or an error, never a panic or a
//! hang, for MX, A and AAAA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_remote::dns;

fuzz_target!(|data: &[u8]| {
    let id = data.first().map_or(0, |&b| u16::from(b) << 8 | u16::from(b));
    for qtype in [15, 1, 28] {
        let _ = dns::parse_answer(data, id, "example.org", qtype);
    }
});
