//! context - the ESEARCH answers of SEARCH and SORT with RETURN options
//! (RFC 4731, RFC 5267 ESORT and PARTIAL), and the searches a client
//! asked to keep up to date (RFC 5267 CONTEXT=SEARCH, CONTEXT=SORT):
//! each remembers its key, its order and its result as UIDs, and when
//! messages arrive, change flags or go, the session tells the client
//! what joined or left the result, in ADDTO and REMOVEFROM.
//!
//! Distrusts cost: an update looks only at the messages that changed,
//! never the whole folder again, and a session keeps at most
//! MAX_CONTEXTS of them (more are refused with NOUPDATE, as §4.3.1
//! allows). A context goes with the selection (SELECT, CLOSE, UNSELECT)
//! or CANCELUPDATE.

use crate::cache::Cache;
use crate::command::{Key, Ret, SortKey};
use crate::folder::Folder;
use crate::messages::{Hit, head_text, read_text, size_of};
use crate::search;
use crate::session::{Selected, Session};
use crate::sort::{self, Val};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::rc::Rc;

/// Update contexts one session may keep (Dovecot-like: a few per client).
pub const MAX_CONTEXTS: usize = 10;

/// A search or sort kept up to date.
#[derive(Debug)]
pub(crate) struct Context {
    tag: String,
    uid: bool,
    key: Key,
    /// The SORT criteria; None for a SEARCH, whose result is in mailbox
    /// order.
    by: Option<Vec<(SortKey, bool)>>,
    /// The result in its order: each message's sort values (none for a
    /// SEARCH) and UID.
    rows: Vec<(Vec<Val>, u32)>,
}

/// One change to a result: added or removed, at a 1-based position (0
/// for a SEARCH), for a run of ids.
#[derive(Debug)]
struct Pair {
    pos: usize,
    lo: u32,
    hi: u32,
}

/// esearch - the `* ESEARCH` line for a result given in its order (by
/// number or UID): MIN and MAX are its first and last (RFC 5267 §3.1),
/// ALL keeps that order, PARTIAL is a window of it (§4.4). The line is
/// left open for the caller's own data (MODSEQ) and CRLF.
pub(crate) fn esearch(out: &mut Vec<u8>, tag: &str, uid: bool, r: Ret, ids: &[u32]) {
    let _ = write!(out, "* ESEARCH (TAG \"{tag}\")");
    if uid {
        out.extend_from_slice(b" UID");
    }
    // RFC 4731 §3.1: MIN, MAX and ALL only when something matched.
    if let (Some(lo), Some(hi)) = (ids.first(), ids.last()) {
        if r.min {
            let _ = write!(out, " MIN {lo}");
        }
        if r.max {
            let _ = write!(out, " MAX {hi}");
        }
    }
    if r.count {
        let _ = write!(out, " COUNT {}", ids.len());
    }
    if r.all && !ids.is_empty() {
        let _ = write!(out, " ALL {}", in_order(ids));
    }
    if let Some(p) = r.partial {
        let part = p.window(ids);
        let set = if part.is_empty() {
            "NIL".to_string()
        } else {
            in_order(part)
        };
        let _ = write!(out, " PARTIAL ({p} {set})");
    }
}

/// in_order - ids as a sequence set that keeps their order: a range
/// only for a run that ascends by one (RFC 5267 §3.2: 10:12 means
/// 10,11,12 whatever the sort said).
pub(crate) fn in_order(ids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j].checked_add(1) == Some(ids[j + 1]) {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}:{}", ids[i], ids[j])
        } else {
            ids[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

/// push - a change added to a list, joined to the one before when it
/// continues its run (the next id at the next position for ADDTO, at
/// the same position for REMOVEFROM).
fn push(v: &mut Vec<Pair>, pos: usize, id: u32, adding: bool) {
    if let Some(p) = v.last_mut() {
        let next_pos = if adding {
            p.pos + (p.hi - p.lo) as usize + 1
        } else {
            p.pos
        };
        if p.pos != 0 && pos == next_pos && p.hi.checked_add(1) == Some(id) {
            p.hi = id;
            return;
        }
    }
    v.push(Pair {
        pos,
        lo: id,
        hi: id,
    });
}

/// pairs - `pos set pos set ...`; a SEARCH's changes (position 0) as one
/// set in mailbox order.
fn pairs(v: &[Pair], search: bool) -> String {
    if search {
        let mut ids: Vec<u32> = v.iter().flat_map(|p| p.lo..=p.hi).collect();
        ids.sort_unstable();
        return format!("0 {}", in_order(&ids));
    }
    let parts: Vec<String> = v
        .iter()
        .map(|p| {
            if p.lo == p.hi {
                format!("{} {}", p.pos, p.lo)
            } else {
                format!("{} {}:{}", p.pos, p.lo, p.hi)
            }
        })
        .collect();
    parts.join(" ")
}

/// line - a context's `* ESEARCH` with its REMOVEFROM, then ADDTO.
fn line(out: &mut Vec<u8>, c: &Context, removed: &[Pair], added: &[Pair]) {
    if removed.is_empty() && added.is_empty() {
        return;
    }
    let _ = write!(out, "* ESEARCH (TAG \"{}\")", c.tag);
    if c.uid {
        out.extend_from_slice(b" UID");
    }
    let search = c.by.is_none();
    if !removed.is_empty() {
        let _ = write!(out, " REMOVEFROM ({})", pairs(removed, search));
    }
    if !added.is_empty() {
        let _ = write!(out, " ADDTO ({})", pairs(added, search));
    }
    out.extend_from_slice(b"\r\n");
}

/// removed - REMOVEFROM for the context members no longer in the folder,
/// sent before the EXPUNGEs (RFC 5267 §4.3.4), numbered as the client
/// still numbers them: `before` is the folder's UIDs before they went.
pub(crate) fn removed(s: &mut Selected, before: Option<&[u32]>, out: &mut Vec<u8>) {
    let Some(before) = before else { return };
    if s.contexts.is_empty() {
        return;
    }
    let live = &s.folder.msgs;
    let present = |u: u32| live.binary_search_by_key(&u, |m| m.uid).is_ok();
    for c in &mut s.contexts {
        let search = c.by.is_none();
        let by_uid = c.uid;
        let gone = drop_where(&mut c.rows, search, |u| {
            if present(u) {
                None
            } else if by_uid {
                Some(Some(u))
            } else {
                // A number the client still has: `before` is its view.
                Some(before.binary_search(&u).ok().map(|i| i as u32 + 1))
            }
        });
        line(out, c, &gone, &[]);
    }
}

/// drop_where - take out of `rows`, in one pass, the messages `id` says
/// go (Some), as REMOVEFROM pairs applied first to last: each at its
/// place once those before it have gone (§4.3.4), or 0 for a SEARCH; a
/// message with no id to tell by goes untold.
fn drop_where(
    rows: &mut Vec<(Vec<Val>, u32)>,
    search: bool,
    id: impl Fn(u32) -> Option<Option<u32>>,
) -> Vec<Pair> {
    let mut gone = Vec::new();
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows.drain(..) {
        match id(row.1) {
            Some(Some(n)) => {
                let pos = if search { 0 } else { kept.len() + 1 };
                push(&mut gone, pos, n, false);
            }
            Some(None) => {}
            None => kept.push(row),
        }
    }
    *rows = kept;
    gone
}

/// uids - the folder's UIDs now, when some context will want them to
/// tell what went; None when there is no context to tell.
pub(crate) fn uids(s: &Selected) -> Option<Vec<u32>> {
    (!s.contexts.is_empty()).then(|| s.folder.msgs.iter().map(|m| m.uid).collect())
}

/// arrived - the folder's UIDs not in `before`: messages new to the
/// session.
pub(crate) fn arrived(s: &Selected, before: Option<&[u32]>) -> Vec<u32> {
    let Some(before) = before else {
        return Vec::new();
    };
    let last = before.last().copied().unwrap_or(0);
    s.folder
        .msgs
        .iter()
        .map(|m| m.uid)
        .filter(|&u| u > last || before.binary_search(&u).is_err())
        .collect()
}

/// hit - message `i` as a search sees it, its text only when `text`:
/// the kept header fields from the cache (filled when it lacks them),
/// or the whole text read from the file when `file`; whether `key`
/// matches it is the caller's.
fn hit(f: &mut Folder, c: Option<&mut Cache>, i: usize, text: bool, file: bool) -> Hit {
    Hit {
        index: i,
        uid: f.msgs[i].uid,
        size: size_of(f, i),
        internal: f.mtime(i),
        text: match (text, file) {
            (false, _) => None,
            (true, false) => head_text(f, c, i),
            (true, true) => read_text(f, c, i, true).map(Rc::new),
        },
    }
}

/// needs_text - whether a context looks at headers or body.
fn needs_text(c: &Context) -> bool {
    search::needs_text(&c.key)
        || c.by.as_ref().is_some_and(|by| {
            by.iter()
                .any(|(k, _)| !matches!(k, SortKey::Arrival | SortKey::Size))
        })
}

impl Session {
    /// update_refused - whether RETURN (UPDATE) must be refused for lack
    /// of room, told in `* NO [NOUPDATE "tag"]` (RFC 5267 §4.3.1); the
    /// search itself still answers.
    pub(crate) fn update_refused(&self, out: &mut Vec<u8>, tag: &str, r: Option<Ret>) -> bool {
        let full = self
            .sel
            .as_ref()
            .is_some_and(|s| s.contexts.len() >= MAX_CONTEXTS);
        let refused = r.is_some_and(|r| r.update) && full;
        if refused {
            let _ = write!(
                out,
                "* NO [NOUPDATE \"{tag}\"] Too many update contexts\r\n"
            );
        }
        refused
    }

    /// tag_in_use - whether an UPDATE search would reuse the tag of a
    /// context still updated, which §4.3 answers with BAD.
    pub(crate) fn tag_in_use(&self, tag: &str, r: Option<Ret>) -> bool {
        r.is_some_and(|r| r.update)
            && self
                .sel
                .as_ref()
                .is_some_and(|s| s.contexts.iter().any(|c| c.tag == tag))
    }

    /// keep_context - remember a search (`by` None) or sort and its
    /// result, to be kept up to date.
    pub(crate) fn keep_context(
        &mut self,
        tag: &str,
        uid: bool,
        by: Option<Vec<(SortKey, bool)>>,
        key: &Key,
        rows: Vec<(Vec<Val>, u32)>,
    ) {
        if let Some(s) = self.sel.as_mut() {
            s.contexts.push(Context {
                tag: tag.to_string(),
                uid,
                key: key.clone(),
                by,
                rows,
            });
        }
    }

    /// cancel_update - CANCELUPDATE: the contexts with these tags end;
    /// a tag that names none is no error (there is nothing left to stop).
    pub(crate) fn cancel_update(&mut self, tags: &[String]) {
        if let Some(s) = self.sel.as_mut() {
            s.contexts.retain(|c| !tags.contains(&c.tag));
        }
    }

    /// context_changed - ADDTO and REMOVEFROM for messages that arrived
    /// or whose flags changed (`uids`), each looked at once, after the
    /// EXISTS that numbers them (RFC 5267 §4.3.3).
    pub(crate) fn context_changed(&mut self, uids: &[u32], out: &mut Vec<u8>) {
        let Some(s) = self.sel.as_mut() else { return };
        if s.contexts.is_empty() || uids.is_empty() {
            return;
        }
        let mut idx: Vec<usize> = uids
            .iter()
            .filter_map(|&u| s.folder.msgs.binary_search_by_key(&u, |m| m.uid).ok())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let text = s.contexts.iter().any(needs_text);
        let file = s.contexts.iter().any(|c| search::needs_file(&c.key));
        if text && !file && s.cache.is_none() {
            s.cache = Some(Cache::load(&s.folder.dir, s.folder.validity));
        }
        let n = s.folder.msgs.len() as u32;
        let max_uid = s.folder.msgs.last().map_or(0, |m| m.uid);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // Each changed message is read once, judged by every context and
        // given its sort values where a context sorts, its text then
        // dropped; then per context all removals, then all additions,
        // each in one pass, so that positions hold in the order the
        // client applies them (§4.3.2).
        struct Judged {
            uid: u32,
            seq: u32,
            /// Per context: whether it matches, and its sort values.
            verdicts: Vec<(bool, Vec<Val>)>,
        }
        let mut judged = Vec::new();
        for i in idx {
            let h = hit(&mut s.folder, s.cache.as_mut(), i, text, file);
            let subject = search::Subject {
                seq: i as u32 + 1,
                max_seq: n,
                max_uid,
                msg: &s.folder.msgs[i],
                keywords: &s.folder.keywords,
                size: h.size,
                internal: h.internal,
                now,
                text: h.text.as_deref(),
            };
            let verdicts = s
                .contexts
                .iter()
                .map(|c| {
                    let m = search::matches(&c.key, &subject);
                    let vals = match (&c.by, m) {
                        (Some(by), true) => sort::values(by, &h),
                        _ => Vec::new(),
                    };
                    (m, vals)
                })
                .collect();
            judged.push(Judged {
                uid: h.uid,
                seq: i as u32 + 1,
                verdicts,
            });
        }
        if let Some(c) = s.cache.as_mut() {
            let live: Vec<u32> = s.folder.msgs.iter().map(|m| m.uid).collect();
            c.save(&live);
        }
        for (j, c) in s.contexts.iter_mut().enumerate() {
            let search = c.by.is_none();
            let by_uid = c.uid;
            let id = |x: &Judged| if by_uid { x.uid } else { x.seq };
            let leaving: HashMap<u32, u32> = judged
                .iter()
                .filter(|x| !x.verdicts[j].0)
                .map(|x| (x.uid, id(x)))
                .collect();
            let rem = if leaving.is_empty() {
                Vec::new()
            } else {
                drop_where(&mut c.rows, search, |u| leaving.get(&u).map(|&n| Some(n)))
            };
            let members: HashSet<u32> = c.rows.iter().map(|r| r.1).collect();
            let mut joining: Vec<(Vec<Val>, u32, u32)> = judged
                .iter_mut()
                .filter(|x| x.verdicts[j].0 && !members.contains(&x.uid))
                .map(|x| (std::mem::take(&mut x.verdicts[j].1), x.uid, id(x)))
                .collect();
            let by = c.by.clone().unwrap_or_default();
            joining.sort_by(|a, b| sort::order(&by, (&a.0, a.1), (&b.0, b.1)));
            // Merged in order: the earliest first, so that each lands at
            // its final place and those after it do not move it.
            let mut add = Vec::new();
            if !joining.is_empty() {
                let old = std::mem::take(&mut c.rows);
                let mut merged = Vec::with_capacity(old.len() + joining.len());
                let mut old = old.into_iter().peekable();
                for (vals, uid, n) in joining {
                    while let Some(r) =
                        old.next_if(|r| sort::order(&by, (&r.0, r.1), (&vals, uid)).is_lt())
                    {
                        merged.push(r);
                    }
                    let pos = if search { 0 } else { merged.len() + 1 };
                    push(&mut add, pos, n, true);
                    merged.push((vals, uid));
                }
                merged.extend(old);
                c.rows = merged;
            }
            line(out, c, &rem, &add);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Partial;

    #[test]
    fn sets_keep_their_order() {
        assert_eq!(in_order(&[1, 2, 3, 7]), "1:3,7");
        assert_eq!(in_order(&[23765, 23764, 23763]), "23765,23764,23763");
        assert_eq!(in_order(&[5, 1, 2, 9]), "5,1:2,9");
        assert_eq!(in_order(&[]), "");
        assert_eq!(in_order(&[u32::MAX, 0]), "4294967295,0");
    }

    #[test]
    fn esearch_lines() {
        let r = |f: fn(&mut Ret)| {
            let mut r = Ret::default();
            f(&mut r);
            r
        };
        let text = |r: Ret, ids: &[u32]| {
            let mut out = Vec::new();
            esearch(&mut out, "A1", true, r, ids);
            out.extend_from_slice(b"\r\n");
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            text(
                r(|r| {
                    r.min = true;
                    r.max = true;
                    r.count = true;
                    r.all = true
                }),
                &[5, 3, 4, 1]
            ),
            "* ESEARCH (TAG \"A1\") UID MIN 5 MAX 1 COUNT 4 ALL 5,3:4,1\r\n"
        );
        assert_eq!(
            text(
                r(|r| r.partial = Some(Partial {
                    from_end: false,
                    lo: 2,
                    hi: 3
                })),
                &[9, 8, 7, 6]
            ),
            "* ESEARCH (TAG \"A1\") UID PARTIAL (2:3 8,7)\r\n"
        );
        assert_eq!(
            text(
                r(|r| r.partial = Some(Partial {
                    from_end: false,
                    lo: 3,
                    hi: 10
                })),
                &[1, 2, 3, 4]
            ),
            "* ESEARCH (TAG \"A1\") UID PARTIAL (3:10 3:4)\r\n"
        );
        assert_eq!(
            text(
                r(|r| r.partial = Some(Partial {
                    from_end: false,
                    lo: 5,
                    hi: 9
                })),
                &[1, 2]
            ),
            "* ESEARCH (TAG \"A1\") UID PARTIAL (5:9 NIL)\r\n"
        );
        // RFC 9394: the last ones, in the result's own order.
        assert_eq!(
            text(
                r(|r| r.partial = Some(Partial {
                    from_end: true,
                    lo: 1,
                    hi: 2
                })),
                &[9, 8, 7, 6]
            ),
            "* ESEARCH (TAG \"A1\") UID PARTIAL (-1:-2 7,6)\r\n"
        );
        assert_eq!(
            text(
                r(|r| r.partial = Some(Partial {
                    from_end: true,
                    lo: 3,
                    hi: 10
                })),
                &[9, 8, 7, 6]
            ),
            "* ESEARCH (TAG \"A1\") UID PARTIAL (-3:-10 9,8)\r\n"
        );
        assert_eq!(
            text(r(|r| r.min = true), &[]),
            "* ESEARCH (TAG \"A1\") UID\r\n"
        );
    }

    #[test]
    fn runs_join() {
        let mut v = Vec::new();
        push(&mut v, 3, 10, true);
        push(&mut v, 4, 11, true);
        push(&mut v, 9, 12, true);
        assert_eq!(pairs(&v, false), "3 10:11 9 12");
        let mut v = Vec::new();
        push(&mut v, 2, 7, false);
        push(&mut v, 2, 8, false);
        push(&mut v, 3, 9, false);
        assert_eq!(pairs(&v, false), "2 7:8 3 9");
        let mut v = Vec::new();
        push(&mut v, 0, 9, true);
        push(&mut v, 0, 4, true);
        push(&mut v, 0, 5, true);
        assert_eq!(pairs(&v, true), "0 4:5,9");
    }
}
