//! queue_id - short, unique, time-ordered names for queued messages.

use std::fmt;

/// Crockford's base 32: no I, L, O, U, so IDs read aloud without confusion.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 12;

/// A queue ID: 12 characters of Crockford base 32, the first 7 from the
/// arrival second (so `ls` sorts roughly by age), the last 5 random.
///
/// ABNF: `queue-id = 12( DIGIT / "A"-"H" / "J" / "K" / "M" / "N" / "P"-"T" / "V"-"Z" )`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    /// generate - a new ID for a message arriving at `secs`.
    pub fn generate(secs: u64) -> QueueId {
        let r = posthorn_sys::fsio::random_u64();
        let mut s = String::with_capacity(LEN);
        for i in (0..7).rev() {
            s.push(ALPHABET[((secs >> (5 * i)) & 31) as usize] as char);
        }
        for i in 0..5 {
            s.push(ALPHABET[((r >> (5 * i)) & 31) as usize] as char);
        }
        QueueId(s)
    }

    /// as_str - the ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for QueueId {
    type Error = String;
    /// try_from - accept only well-formed IDs, so an ID is always a safe file name.
    fn try_from(s: &str) -> Result<Self, String> {
        if s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(QueueId(s.to_string()))
        } else {
            Err(format!("not a queue ID: {s:?}"))
        }
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_ordered_by_time() {
        let a = QueueId::generate(1_700_000_000);
        let b = QueueId::generate(1_700_000_100);
        assert!(QueueId::try_from(a.as_str()).is_ok());
        assert!(a.as_str()[..7] < b.as_str()[..7]);
        assert!(QueueId::try_from("../etc/pass").is_err());
        assert!(QueueId::try_from("0123456789AI").is_err());
    }
}
