//! flags - a message's flags as the Maildir file name carries them
//! (`<base>:2,<flags>`: `D` draft, `F` flagged, `P` passed, `R` replied,
//! `S` seen, `T` trashed, `a`-`z` keywords by their index in
//! `dovecot-keywords`), and that file, as Dovecot's maildir-keywords.c
//! writes it: `<index> <name>` lines.
//!
//! Distrusts names and the keywords file: unknown letters in a name are
//! kept as they were (another program's flags survive our renames), a
//! keyword is an IMAP atom or it is not stored, and at most 26 keywords
//! exist per folder (the letters), as in Dovecot.

pub use posthorn_store::keywords::{KEYWORDS_FILE, Keywords, is_keyword};

/// System flag bits.
pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;
/// `P` (passed/forwarded): no IMAP flag, kept through renames.
pub const PASSED: u8 = 32;

/// The IMAP names of the system flags, in the order FETCH FLAGS lists them.
pub const SYSTEM: [(u8, &str); 5] = [
    (SEEN, "\\Seen"),
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (DRAFT, "\\Draft"),
];

/// A message's flags: system bits and keyword bits (bit i = letter 'a'+i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags {
    pub system: u8,
    pub keywords: u32,
}

impl Flags {
    /// from_info - the flags after `:2,` in a file name; letters we do not
    /// know are ignored here (and kept by `info`'s caller through `other`).
    pub fn from_info(info: &str) -> Flags {
        let mut f = Flags::default();
        for c in info.bytes() {
            match c {
                b'D' => f.system |= DRAFT,
                b'F' => f.system |= FLAGGED,
                b'P' => f.system |= PASSED,
                b'R' => f.system |= ANSWERED,
                b'S' => f.system |= SEEN,
                b'T' => f.system |= DELETED,
                b'a'..=b'z' => f.keywords |= 1 << (c - b'a'),
                _ => {}
            }
        }
        f
    }

    /// info - the flag letters, in ASCII order as the Maildir spec asks,
    /// with `other` (unknown letters from the old name) merged in.
    pub fn info(&self, other: &str) -> String {
        let mut v: Vec<u8> = Vec::new();
        for (bit, c) in [
            (DRAFT, b'D'),
            (FLAGGED, b'F'),
            (PASSED, b'P'),
            (ANSWERED, b'R'),
            (SEEN, b'S'),
            (DELETED, b'T'),
        ] {
            if self.system & bit != 0 {
                v.push(c);
            }
        }
        for i in 0..26u8 {
            if self.keywords & (1 << i) != 0 {
                v.push(b'a' + i);
            }
        }
        for c in other.bytes() {
            if !c.is_ascii_alphabetic() && c.is_ascii_graphic() && c != b'/' && !v.contains(&c) {
                v.push(c);
            }
        }
        v.sort_unstable();
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_letters() {
        let f = Flags::from_info("FRSab");
        assert_eq!(f.system, FLAGGED | ANSWERED | SEEN);
        assert_eq!(f.keywords, 3);
        assert_eq!(f.info(""), "FRSab");
        let g = Flags {
            system: SEEN | DELETED | DRAFT | PASSED,
            keywords: 1 << 25,
        };
        assert_eq!(g.info(""), "DPSTz");
        // Unknown non-letter flags of other programs are kept.
        assert_eq!(Flags::from_info("S").info("S,"), ",S");
    }
}
