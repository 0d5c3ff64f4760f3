//! throttle - how many local deliveries may run at once for one
//! recipient (`local.destination_concurrency`, Postfix's
//! local_destination_concurrency_limit), so that one user whose .forward
//! command hangs holds some of the delivery slots, never all of them.
//!
//! A delivery that finds its recipient's slots taken is not waited for
//! (waiting would hold a slot all the same): it is left for a later pass
//! of its message, which the scheduler starts when a slot is free.

use crate::resolve::{RunAs, Target};
use posthorn_mail::address;
use std::collections::HashMap;
use std::sync::Mutex;

/// Deliveries running per local recipient.
#[derive(Debug)]
pub struct LocalLimit {
    busy: Mutex<HashMap<String, usize>>,
    limit: usize,
}

/// A running delivery's slot; given back on drop.
#[derive(Debug)]
pub struct Slot<'a> {
    owner: &'a LocalLimit,
    key: String,
}

impl LocalLimit {
    /// new - at most `limit` deliveries at once per recipient.
    pub fn new(limit: usize) -> LocalLimit {
        LocalLimit {
            busy: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    /// try_acquire - a slot for `key`, or None when all of its are taken.
    pub fn try_acquire(&self, key: &str) -> Option<Slot<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let n = busy.entry(key.to_string()).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self,
            key: key.to_string(),
        })
    }

    /// free - how many more deliveries `key` may start now.
    pub fn free(&self, key: &str) -> usize {
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        self.limit - busy.get(key).copied().unwrap_or(0).min(self.limit)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self.owner.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = busy.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.key);
            }
        }
    }
}

/// key - the recipient a local target counts against: the user whose
/// mailbox it is or whose rights a command or file runs with, else (a
/// command or file of the aliases file) the alias's address.
pub fn key(t: &Target) -> String {
    match t {
        Target::Mailbox { user, .. } => format!("user:{}", user.name),
        Target::Pipe {
            run_as: RunAs::User { name, .. },
            ..
        }
        | Target::File {
            run_as: RunAs::User { name, .. },
            ..
        } => format!("user:{name}"),
        Target::Pipe { address, .. } | Target::File { address, .. } => {
            let (local, domain) = address::split(address);
            let (base, _) = address::split_detail(local);
            format!(
                "rcpt:{}@{}",
                base.to_ascii_lowercase(),
                domain.unwrap_or("").to_ascii_lowercase()
            )
        }
        Target::Remote { address }
        | Target::Fail { address, .. }
        | Target::Defer { address, .. } => format!("other:{address}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_recipient() {
        let l = LocalLimit::new(2);
        let a1 = l.try_acquire("user:ann").unwrap();
        let _a2 = l.try_acquire("user:ann").unwrap();
        assert!(l.try_acquire("user:ann").is_none(), "ann has both of hers");
        assert_eq!(l.free("user:ann"), 0);
        assert!(l.try_acquire("user:bob").is_some(), "bob is not held up");
        drop(a1);
        assert_eq!(l.free("user:ann"), 1);
        assert!(l.try_acquire("user:ann").is_some());
    }

    #[test]
    fn keys() {
        let pipe = |run_as, address: &str| Target::Pipe {
            command: "x".into(),
            run_as,
            home: None,
            address: address.into(),
        };
        let dave = RunAs::User {
            name: "dave".into(),
            uid: 1000,
            gid: 1000,
        };
        assert_eq!(key(&pipe(dave, "dave@h")), "user:dave");
        assert_eq!(key(&pipe(RunAs::Nobody, "Bot+x@H")), "rcpt:bot@h");
        assert_eq!(key(&pipe(RunAs::Qrun, "bot@h")), "rcpt:bot@h");
    }
}
