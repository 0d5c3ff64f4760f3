//! fuzz - the one entry point the fuzz target calls: any bytes as a
//! script (compiled, its compiled form round-tripped through the cache
//! codec, then run on a small message with no I/O) and as a cache file.
//! A panic anywhere here is a bug.

use crate::interp::{self, Envelope, Host, Settings};
use crate::script::{Location, Script};
use std::rc::Rc;

const MSG: &[u8] = b"From: Ann <ann+x@example.org>\nTo: bob@example.org, carl@example.net\nSubject: =?utf-8?q?Caf=C3=A9?= [list] hello\nDate: Fri, 17 Jun 2005 13:52:15 -0400\nMessage-ID: <1@example.org>\nX-Spam-Score: 7.5 / 15\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody text\n--b--\n";

struct NoIo;

impl Host for NoIo {
    fn include(&mut self, _: Location, name: &str) -> Result<Option<Rc<Script>>, String> {
        // Including itself: recursion must be caught, not followed.
        Ok(
            crate::compile(&format!("require \"include\"; include \"{name}\";"))
                .ok()
                .map(Rc::new),
        )
    }
    fn mailbox_exists(&self, name: &str) -> bool {
        name.len().is_multiple_of(2)
    }
    fn duplicate_seen(&mut self, key: &str) -> bool {
        !key.len().is_multiple_of(2)
    }
}

/// one - check one input; panics only on a bug (the fuzzer's signal).
#[allow(clippy::panic)]
pub fn one(data: &[u8]) {
    let _ = crate::codec::decode(data);
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(script) = crate::compile(src) else {
        return;
    };
    let bytes = crate::codec::encode(&script, b"fuzz");
    match crate::codec::decode(&bytes) {
        Ok(back) => assert!(back == script, "the cache codec changed a script"),
        Err(e) => panic!("the cache codec refused its own output: {e}"),
    }
    let settings = Settings {
        spamtest: Some(interp::ScoreHeader {
            header: "X-Spam-Score".into(),
            max: 10.0,
        }),
        now: 1_700_000_000,
        ..Settings::default()
    };
    let env = Envelope {
        from: "ann@example.org".into(),
        to: "bob@example.org".into(),
        orig_to: "bob@example.org".into(),
    };
    let msg = interp::Message::parse(MSG, MSG.len() as u64);
    let _ = interp::run(&[Rc::new(script)], &msg, &env, &settings, &mut NoIo);
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_do_not_panic() {
        for s in [
            "require \"include\"; include \"x\";",
            "require [\"variables\",\"regex\"]; if header :regex \"subject\" \"(.*)\" { set \"a\" \"${1}${1}${1}\"; }",
            "require \"body\"; if body :content \"\" :contains \"x\" { discard; }",
            "if true { if true { keep; } }",
        ] {
            super::one(s.as_bytes());
        }
        super::one(b"PHSVBIN 1\n\x05\x00\x00\x00\x00");
        super::one(&[0xff, 0xfe]);
    }
}
