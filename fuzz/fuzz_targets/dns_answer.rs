//! dns_answer - the DNS client's answer parser (posthorn-dns) on arbitrary
//! packets (what any host on the path can send): an answer, an alias, a
//! stray or an error, never a panic or a hang, for every type it asks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data.first().map_or(0, |&b| u16::from(b) << 8 | u16::from(b));
    for qtype in [1, 12, 15, 16, 28] {
        let _ = posthorn_dns::parse_reply(data, id, "eXample.org", qtype);
    }
});
