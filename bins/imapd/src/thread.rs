//! thread - THREAD=REFERENCES and its UID form (RFC 5256 §4): messages
//! linked by Message-ID, References and In-Reply-To into trees through
//! an id table, dummies for the parents we do not have pruned, the
//! threads then gathered by base subject and every set of siblings put
//! in sent date order.
//!
//! Distrusts the headers: a missing or duplicate Message-ID gets an id
//! of its own, a link that would make a loop is not made, and a chain of
//! References thousands long is walked without recursion, so no header
//! can make the session loop or overflow its stack.

use crate::command::Key;
use crate::messages::Hit;
use crate::session::{Action, Session};
use crate::sort::{base_subject_reply, header, sent};
use std::collections::HashMap;
use std::io::Write;

/// One container: a message, or a dummy standing for one we lack.
#[derive(Debug, Default)]
struct Node {
    /// Index into the hits, None for a dummy.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The containers, and the messages they hold.
#[derive(Debug)]
struct Forest {
    nodes: Vec<Node>,
    /// Sent date and sequence number of each hit, for sorting.
    keys: Vec<(i64, u32)>,
}

impl Session {
    /// thread_references - THREAD REFERENCES and UID THREAD REFERENCES.
    pub(crate) fn thread_references(&mut self, tag: &str, uid: bool, key: &Key) -> Vec<Action> {
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        }
        let hits = self.matching(key, true, false);
        let ids: Vec<u32> = hits
            .iter()
            .map(|h| if uid { h.uid } else { h.index as u32 + 1 })
            .collect();
        let (f, roots) = threads(&hits);
        // An empty result is `* THREAD` with nothing after it.
        out.extend_from_slice(if roots.is_empty() {
            b"* THREAD"
        } else {
            b"* THREAD "
        });
        for r in roots {
            out.push(b'(');
            f.write(r, &ids, &mut out);
            out.push(b')');
        }
        out.extend_from_slice(b"\r\n");
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, false, "OK THREAD completed"));
        v
    }
}

/// msg_ids - the `<...>` message ids in a header value, in order.
fn msg_ids(v: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = v;
    while let Some(a) = rest.find('<') {
        let Some(b) = rest[a..].find('>') else { break };
        let id = rest[a + 1..a + b].trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
        rest = &rest[a + b + 1..];
    }
    ids
}

impl Forest {
    /// node - the container for `id` in the table, made when new.
    fn node(&mut self, table: &mut HashMap<String, usize>, id: &str) -> usize {
        if let Some(&n) = table.get(id) {
            return n;
        }
        self.nodes.push(Node::default());
        table.insert(id.to_string(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// reaches - whether `a` is `b` or one of `b`'s ancestors.
    fn reaches(&self, a: usize, b: usize) -> bool {
        let mut at = Some(b);
        let mut steps = 0;
        while let Some(n) = at {
            if n == a {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true;
            }
            at = self.nodes[n].parent;
        }
        false
    }

    /// link - make `child` a child of `parent`, unless that makes a loop.
    fn link(&mut self, parent: usize, child: usize) {
        if self.reaches(child, parent) {
            return;
        }
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// unlink - take `child` from its parent's children.
    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// first_msg - the message a node sorts and is named by: its own, or
    /// a dummy's first child's.
    fn first_msg(&self, mut n: usize) -> Option<usize> {
        for _ in 0..=self.nodes.len() {
            if let Some(m) = self.nodes[n].msg {
                return Some(m);
            }
            n = *self.nodes[n].children.first()?;
        }
        None
    }

    /// key - the sent date and sequence number a node sorts by.
    fn key(&self, n: usize) -> (i64, u32) {
        self.first_msg(n)
            .map_or((i64::MAX, u32::MAX), |m| self.keys[m])
    }

    /// descendants - `roots` and all below them, parents before children.
    fn descendants(&self, roots: &[usize]) -> Vec<usize> {
        let mut order = Vec::new();
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(self.nodes[n].children.iter().rev());
        }
        order
    }

    /// sort - every set of siblings below `roots` by sent date, deepest
    /// first, so that a dummy sorts by its sorted first child.
    fn sort(&mut self, roots: &[usize]) {
        for n in self.descendants(roots).into_iter().rev() {
            let mut c = std::mem::take(&mut self.nodes[n].children);
            c.sort_by_key(|&x| self.key(x));
            self.nodes[n].children = c;
        }
    }

    /// prune - §4 step 3: dummies without children go, dummies with
    /// children give them to their own parent (at the top only when
    /// there is just one), deepest first.
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        for n in self.descendants(&roots).into_iter().rev() {
            let mut kept = Vec::new();
            for c in std::mem::take(&mut self.nodes[n].children) {
                if self.nodes[c].msg.is_none() {
                    for g in std::mem::take(&mut self.nodes[c].children) {
                        self.nodes[g].parent = Some(n);
                        kept.push(g);
                    }
                } else {
                    kept.push(c);
                }
            }
            self.nodes[n].children = kept;
        }
        let mut top = Vec::new();
        for r in roots {
            if self.nodes[r].msg.is_some() || self.nodes[r].children.len() > 1 {
                top.push(r);
            } else if let Some(&only) = self.nodes[r].children.first() {
                self.nodes[r].children.clear();
                self.nodes[only].parent = None;
                top.push(only);
            }
        }
        top
    }

    /// write - one thread's members: numbers along a chain of single
    /// children, a parenthesised list for each child where it branches.
    fn write(&self, n: usize, ids: &[u32], out: &mut Vec<u8>) {
        // Work items: a node to write, or text to put out.
        enum W {
            Node(usize),
            Text(&'static [u8]),
        }
        let mut stack = vec![W::Node(n)];
        while let Some(w) = stack.pop() {
            let n = match w {
                W::Text(t) => {
                    out.extend_from_slice(t);
                    continue;
                }
                W::Node(n) => n,
            };
            let node = &self.nodes[n];
            if let Some(m) = node.msg {
                let _ = write!(out, "{}", ids[m]);
                match node.children.len() {
                    0 => continue,
                    1 => {
                        stack.push(W::Node(node.children[0]));
                        stack.push(W::Text(b" "));
                        continue;
                    }
                    _ => out.push(b' '),
                }
            }
            for &c in node.children.iter().rev() {
                stack.push(W::Text(b")"));
                stack.push(W::Node(c));
                stack.push(W::Text(b"("));
            }
        }
    }
}

/// threads - the containers and the sorted top-level threads of `hits`
/// by §4's steps.
fn threads(hits: &[Hit]) -> (Forest, Vec<usize>) {
    let mut f = Forest {
        nodes: Vec::new(),
        keys: hits.iter().map(|h| (sent(h), h.index as u32 + 1)).collect(),
    };
    let mut table: HashMap<String, usize> = HashMap::new();
    // Step 1: the id table and the links.
    for (i, h) in hits.iter().enumerate() {
        let own = msg_ids(header(h, "message-id")).into_iter().next();
        // (A) A missing or duplicate id is made unique; NUL is never in one.
        let me = match own {
            Some(id) if table.get(&id).is_none_or(|&n| f.nodes[n].msg.is_none()) => {
                f.node(&mut table, &id)
            }
            _ => f.node(&mut table, &format!("\0{i}")),
        };
        f.nodes[me].msg = Some(i);
        let mut refs = msg_ids(header(h, "references"));
        if refs.is_empty() {
            refs = msg_ids(header(h, "in-reply-to"))
                .into_iter()
                .take(1)
                .collect();
        }
        // (B) Each reference the parent of the next, where not yet linked.
        let chain: Vec<usize> = refs.iter().map(|r| f.node(&mut table, r)).collect();
        for w in chain.windows(2) {
            if w[0] != w[1] && f.nodes[w[1]].parent.is_none() {
                f.link(w[0], w[1]);
            }
        }
        // (C) The last reference is this message's parent, replacing
        // whatever a truncated References elsewhere made it.
        f.unlink(me);
        if let Some(&last) = chain.last() {
            f.link(last, me);
        }
    }
    // Step 2: the root set.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    // Step 3 (the table goes) and step 4, pruning.
    drop(table);
    let roots = f.prune(roots);
    f.sort(&roots);
    // Step 5: threads gathered by base subject.
    let subject = |f: &Forest, n: usize| -> (String, bool) {
        f.nodes[n]
            .msg
            .or_else(|| f.first_msg(n))
            .map_or((String::new(), false), |m| {
                base_subject_reply(header(&hits[m], "subject"))
            })
    };
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let (s, reply) = subject(&f, r);
        if s.is_empty() {
            continue;
        }
        match by_subject.get(&s) {
            None => {
                by_subject.insert(s, r);
            }
            Some(&t) => {
                let t_dummy = f.nodes[t].msg.is_none();
                let r_dummy = f.nodes[r].msg.is_none();
                if !t_dummy && (r_dummy || (subject(&f, t).1 && !reply)) {
                    by_subject.insert(s, r);
                }
            }
        }
    }
    let mut top: Vec<Option<usize>> = roots.iter().map(|&r| Some(r)).collect();
    let mut pos: HashMap<usize, usize> = roots.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    for (i, &r) in roots.iter().enumerate() {
        let (s, reply) = subject(&f, r);
        let Some(&t) = by_subject.get(&s) else {
            continue;
        };
        // Empty subjects, the table's own entry and roots already
        // gathered under a new dummy stay as they are.
        if s.is_empty() || t == r || f.nodes[r].parent.is_some() {
            continue;
        }
        let t_dummy = f.nodes[t].msg.is_none();
        let r_dummy = f.nodes[r].msg.is_none();
        top[i] = None;
        if t_dummy && r_dummy {
            for c in std::mem::take(&mut f.nodes[r].children) {
                f.nodes[c].parent = Some(t);
                f.nodes[t].children.push(c);
            }
        } else if t_dummy || (reply && !subject(&f, t).1) {
            f.nodes[r].parent = Some(t);
            f.nodes[t].children.push(r);
        } else {
            f.nodes.push(Node::default());
            let d = f.nodes.len() - 1;
            f.nodes[d].children = vec![t, r];
            f.nodes[t].parent = Some(d);
            f.nodes[r].parent = Some(d);
            if let Some(at) = pos.remove(&t) {
                top[at] = Some(d);
                pos.insert(d, at);
            }
            by_subject.insert(s, d);
        }
    }
    // Step 6: every set of siblings, the top level too, by sent date.
    let mut roots: Vec<usize> = top.into_iter().flatten().collect();
    f.sort(&roots);
    roots.sort_by_key(|&r| f.key(r));
    (f, roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        assert_eq!(msg_ids("<a@x> <b@y>\t<c@z>"), vec!["a@x", "b@y", "c@z"]);
        assert_eq!(msg_ids("junk <a@x> (comment) <"), vec!["a@x"]);
        assert!(msg_ids("").is_empty());
        assert!(msg_ids("<>").is_empty());
    }

    /// hit - message `i` with these header fields.
    fn hit(i: usize, fields: &[(&str, String)]) -> Hit {
        Hit {
            index: i,
            uid: i as u32 + 1,
            size: 0,
            internal: i as i64,
            text: Some(std::rc::Rc::new(crate::search::Text {
                headers: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ..Default::default()
            })),
        }
    }

    /// render - the THREAD response's threads for `hits`.
    fn render(hits: &[Hit]) -> String {
        let (f, roots) = threads(hits);
        let ids: Vec<u32> = hits.iter().map(|h| h.uid).collect();
        let mut out = Vec::new();
        for r in roots {
            out.push(b'(');
            f.write(r, &ids, &mut out);
            out.push(b')');
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn loops_are_not_made() {
        let hits = [
            hit(
                0,
                &[
                    ("message-id", "<a>".into()),
                    ("references", "<b> <a>".into()),
                ],
            ),
            hit(
                1,
                &[("message-id", "<b>".into()), ("references", "<a>".into())],
            ),
            hit(
                2,
                &[("message-id", "<c>".into()), ("in-reply-to", "<c>".into())],
            ),
        ];
        assert_eq!(render(&hits), "(1 2)(3)");
    }

    #[test]
    fn long_chains_need_no_deep_stack() {
        let n = 3_000;
        let hits: Vec<Hit> = (0..n)
            .map(|i| {
                let mut f = vec![("message-id", format!("<{i}>"))];
                if i > 0 {
                    f.push(("references", format!("<{}>", i - 1)));
                }
                hit(i, &f)
            })
            .collect();
        let got = render(&hits);
        assert!(got.starts_with("(1 2 3 "), "{}", &got[..20]);
        assert!(got.ends_with(&format!(" {n})")));
    }
}
