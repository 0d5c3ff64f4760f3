//! SASL PLAIN and LOGIN: any client lines, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use posthorn_auth::sasl::{Exchange, Mechanism};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let first = lines.next();
    for mech in [Mechanism::Plain, Mechanism::Login] {
        let (mut x, _) = Exchange::start(mech, first);
        for l in lines.clone() {
            let _ = x.respond(l);
        }
    }
});
