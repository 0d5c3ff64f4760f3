//! imapd's MIME structure: any message gets a part tree whose ranges lie
//! inside it, and BODYSTRUCTURE, ENVELOPE, every section and the search
//! text come out of it without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use posthorn_imapd::command::{Section, SectionText};
use posthorn_imapd::{fetch, mime, search};

fuzz_target!(|data: &[u8]| {
    let m = mime::to_crlf(data);
    let root = mime::parse(&m);
    assert!(root.body.end <= m.len() && root.header.start <= root.body.start);
    let mut out = Vec::new();
    fetch::body(&mut out, &m, &root, true, true);
    fetch::envelope(&mut out, &m[root.header.clone()]);
    for path in [&[][..], &[1], &[2], &[1, 1], &[2, 1], &[2, 2, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::Fields(vec!["SUBJECT".into()])),
            Some(SectionText::FieldsNot(vec!["SUBJECT".into()])),
        ] {
            let s = Section { path: path.to_vec(), text };
            let _ = fetch::section_data(&m, &root, &s);
        }
    }
    let _ = search::text(&m, &root);
});
