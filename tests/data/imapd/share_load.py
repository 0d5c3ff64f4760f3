#!/usr/bin/env python3
"""share_load - several IMAP servers (and deliver, and pop3d) on one
Maildir at once, under load, with every client checking what it sees.

Used by tests/e2e/imapd.rs (issue 20). Each IMAP client, for the given
time, logs in, LISTs, asks STATUS, SELECTs INBOX with CONDSTORE, FETCHes
every message's UID, FLAGS, MODSEQ and X-Id, STOREs flags and keywords
on messages it appended itself, APPENDs new ones (with old dates, as
migrations do), EXPUNGEs some of its own, and logs out; meanwhile
deliver adds mail and a POP3 client reads it. Every answer other than
OK, and every broken promise, is an error:

- UIDVALIDITY never changes; a message (by X-Id) keeps its UID;
- UIDNEXT never goes down for a client;
- MODSEQ is positive and never goes down for a message, per server;
- a flag or keyword a client set on its own message is seen by its
  later FETCHes (only the owner changes its messages' flags);
- no message vanishes unless its owner expunged it;
- at the end, every server shows every message appended or delivered
  with OK and not expunged, and nothing else new.

Prints `count NAME N` lines, then `error WHO: WHAT` lines, and exits
0; the test asserts on them.
"""

import argparse
import imaplib
import poplib
import random
import re
import subprocess
import threading
import time

FETCH_RE = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|MODSEQ \((\d+)\)")
XID_RE = re.compile(rb"X-Id: (\S+)", re.I)


class Shared:
    """What all clients know: appended and expunged messages, UIDs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.appended = {}  # xid -> who
        self.expunging = set()  # xids their owners are expunging
        self.uid_of = {}  # xid -> uid
        self.validity = None
        self.errors = []
        self.counts = {}

    def error(self, who, what):
        with self.lock:
            if len(self.errors) < 200:
                self.errors.append(f"{who}: {what}")

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


def parse_fetch(data):
    """uid -> (xid, flags, modseq) from an imaplib FETCH answer."""
    out = {}
    cur = b""
    items = []
    for part in data:
        if isinstance(part, tuple):
            cur += part[0] + part[1]
        elif part is not None:
            cur += part
            items.append(cur)
            cur = b""
    if cur:
        items.append(cur)
    for it in items:
        uid = flags = modseq = None
        for m in FETCH_RE.finditer(it):
            if m.group(1):
                uid = int(m.group(1))
            elif m.group(2) is not None:
                flags = set(m.group(2).decode().split())
            elif m.group(3):
                modseq = int(m.group(3))
        x = XID_RE.search(it)
        if uid is not None:
            # An unsolicited FETCH (flags another session changed) may
            # come for the same message: merge, keeping its X-Id.
            old_x, old_f, old_m = out.get(uid, (None, set(), None))
            out[uid] = (
                x.group(1).decode() if x else old_x,
                flags if flags is not None else old_f,
                modseq if modseq is not None else old_m,
            )
    return out


class Client:
    """One IMAP client: a loop of short sessions against one server."""

    def __init__(self, shared, name, server, port, login, until):
        self.s = shared
        self.name = name
        self.server = server
        self.port = port
        self.login = login
        self.until = until
        self.n = 0
        self.own = {}  # xid -> expected flags it set (of WATCHED)
        self.seen = {}  # xid -> uid, as its last FETCH saw them
        self.modseq = {}  # uid -> last modseq seen
        self.uidnext = 0

    WATCHED = {"\\Flagged", "Own1", "Own2"}

    def check(self, typ, what, data=None):
        if typ != "OK":
            raise imaplib.IMAP4.error(f"{what}: {typ} {data!r}")

    def run(self):
        while time.time() < self.until:
            try:
                self.session()
            except (imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError) as e:
                self.s.error(self.name, f"{type(e).__name__}: {e}")
                time.sleep(0.2)

    def session(self):
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=60)
        try:
            if self.login:
                user, pw = self.login
                self.check(c.login(user, pw)[0], "LOGIN")
            typ, data = c.list()
            self.check(typ, "LIST", data)
            typ, data = c.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY)")
            self.check(typ, "STATUS", data)
            typ, data = c._simple_command("SELECT", "INBOX", "(CONDSTORE)")
            self.check(typ, "SELECT", data)
            c.state = "SELECTED"
            v = c.untagged_responses.get("UIDVALIDITY", [b"0"])[-1]
            self.validity_is(int(v))
            nxt = int(c.untagged_responses.get("UIDNEXT", [b"0"])[-1])
            if nxt < self.uidnext:
                self.s.error(self.name, f"UIDNEXT {nxt} after {self.uidnext}")
            self.uidnext = max(nxt, self.uidnext)
            for _ in range(random.randint(2, 5)):
                if time.time() >= self.until:
                    break
                op = random.choice(["fetch", "store", "store", "append", "append", "expunge"])
                getattr(self, op)(c)
            self.fetch(c)
            c.logout()
        finally:
            try:
                c.shutdown()
            except OSError:
                pass
        self.s.count(f"{self.server} sessions")

    def validity_is(self, v):
        with self.s.lock:
            if self.s.validity is None:
                self.s.validity = v
            elif self.s.validity != v:
                self.s.errors.append(f"{self.name}: UIDVALIDITY {v} after {self.s.validity}")

    def fetch(self, c):
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS (X-Id)])")
        self.check(typ, "UID FETCH", data)
        got = parse_fetch(data)
        self.s.count(f"{self.server} fetches")
        present = {}
        for uid, (xid, flags, modseq) in got.items():
            if modseq is None or modseq <= 0:
                self.s.error(self.name, f"UID {uid}: MODSEQ {modseq}")
            elif modseq < self.modseq.get(uid, 0):
                self.s.error(self.name, f"UID {uid}: MODSEQ {modseq} after {self.modseq[uid]}")
            if modseq:
                self.modseq[uid] = max(modseq, self.modseq.get(uid, 0))
            if xid is None:
                continue
            present[xid] = uid
            with self.s.lock:
                known = self.s.uid_of.setdefault(xid, uid)
            if known != uid:
                self.s.error(self.name, f"{xid}: UID {uid}, was {known}")
            if xid in self.own:
                want = self.own[xid]
                have = flags & self.WATCHED
                if have != want:
                    self.s.error(self.name, f"{xid}: flags {sorted(have)}, set {sorted(want)}")
        with self.s.lock:
            gone = [x for x in self.seen if x not in present and x not in self.s.expunging]
        for x in gone:
            self.s.error(self.name, f"{x} (UID {self.seen[x]}) vanished")
        self.seen = present
        return got

    def mine(self, c):
        """(uid, xid) of one of its own messages now in the folder."""
        got = self.fetch(c)
        own = [(u, x) for u, (x, _, _) in got.items() if x in self.own]
        return random.choice(own) if own else None

    def store(self, c):
        m = self.mine(c)
        if m is None:
            return
        uid, xid = m
        flag = random.choice(sorted(self.WATCHED))
        add = flag not in self.own[xid]
        typ, data = c.uid("STORE", str(uid), "+FLAGS" if add else "-FLAGS", f"({flag})")
        self.check(typ, "UID STORE", data)
        if add:
            self.own[xid].add(flag)
        else:
            self.own[xid].discard(flag)
        self.s.count(f"{self.server} stores")

    def append(self, c):
        self.n += 1
        xid = f"{self.name}-{self.n}"
        year = random.choice([1999, 2005, 2015, 2026])
        date = f'"{random.randint(1, 28):02d}-Mar-{year} 10:00:00 +0000"'
        body = (
            f"From: {self.name}@example.org\r\nSubject: load {self.n}\r\n"
            f"X-Id: {xid}\r\nDate: Mon, 1 Mar {year} 10:00:00 +0000\r\n\r\n"
            + "line of text\r\n" * random.randint(1, 40)
        ).encode()
        flags = random.choice(["()", "(\\Flagged)", "(\\Seen Own1)"])
        typ, data = c.append("INBOX", flags, date, body)
        self.check(typ, "APPEND", data)
        self.own[xid] = set(flags.strip("()").split()) & self.WATCHED
        with self.s.lock:
            self.s.appended[xid] = self.server
        self.s.count(f"{self.server} appends")

    def expunge(self, c):
        m = self.mine(c)
        if m is None:
            return
        uid, xid = m
        with self.s.lock:
            self.s.expunging.add(xid)
        typ, data = c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        self.check(typ, "UID STORE \\Deleted", data)
        typ, data = c.uid("EXPUNGE", str(uid))
        self.check(typ, "UID EXPUNGE", data)
        del self.own[xid]
        self.s.count(f"{self.server} expunges")


def deliverer(shared, cmd, until):
    n = 0
    while time.time() < until:
        n += 1
        xid = f"deliver-{n}"
        msg = f"From: cron@example.org\nSubject: delivered {n}\nX-Id: {xid}\n\nbody\n".encode()
        r = subprocess.run(cmd, input=msg, capture_output=True)
        if r.returncode != 0:
            shared.error("deliver", f"exit {r.returncode}: {r.stderr.decode(errors='replace')}")
        else:
            with shared.lock:
                shared.appended[xid] = "deliver"
            shared.count("deliveries")
        time.sleep(0.2)


def pop3_reader(shared, port, login, until):
    """A POP3 client reading what the others change: a RETR refused
    because the message is gone is right only if a new session no longer
    lists it; IN-USE (the last session's lock not yet let go) is retried."""
    gone = None
    while time.time() < until:
        try:
            p = poplib.POP3("127.0.0.1", port, timeout=60)
            p.user(login[0])
            try:
                p.pass_(login[1])
            except poplib.error_proto as e:
                if b"[IN-USE]" not in e.args[0]:
                    raise
                shared.count("pop3 in use")
                p.quit()
                time.sleep(0.05)
                continue
            _, listing, _ = p.uidl()
            uidls = [x.split()[1] for x in listing]
            if gone is not None and gone in uidls:
                shared.error("pop3", f"RETR said {gone!r} was gone, but it is listed")
            gone = None
            if listing:
                n, u = random.choice(listing).split()
                try:
                    p.retr(int(n))
                except poplib.error_proto as e:
                    if b"gone" not in e.args[0]:
                        raise
                    gone = u
                    shared.count("pop3 retr of expunged")
            p.quit()
            shared.count("pop3 sessions")
        except (poplib.error_proto, OSError) as e:
            shared.error("pop3", f"{type(e).__name__}: {e}")
        time.sleep(0.1)


def final(shared, name, port, login):
    """xids a fresh session of one server sees."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    if login:
        c.login(*login)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (X-Id)])")
    c.logout()
    if typ != "OK":
        shared.error(f"final {name}", f"FETCH {typ}")
        return set()
    return {x for (x, _, _) in parse_fetch(data).values() if x}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imap", action="append", default=[], help="NAME:PORT[:login]")
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--deliver", nargs="*")
    ap.add_argument("--pop3", type=int)
    ap.add_argument("--user", default="ann")
    ap.add_argument("--password", default="x")
    a = ap.parse_args()
    shared = Shared()
    login = (a.user, a.password)
    until = time.time() + a.seconds
    servers = []
    for spec in a.imap:
        name, port, *rest = spec.split(":")
        servers.append((name, int(port), login if rest and rest[0] == "login" else None))
    threads = []
    for name, port, lg in servers:
        for k in range(a.clients):
            cl = Client(shared, f"{name}{k}", name, port, lg, until)
            threads.append(threading.Thread(target=cl.run))
    if a.deliver:
        threads.append(threading.Thread(target=deliverer, args=(shared, a.deliver, until)))
    if a.pop3:
        threads.append(threading.Thread(target=pop3_reader, args=(shared, a.pop3, login, until)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with shared.lock:
        want = {x for x in shared.appended if x not in shared.expunging}
        expunged = set(shared.expunging)
    for name, port, lg in servers:
        have = final(shared, name, port, lg)
        for x in sorted(want - have)[:20]:
            shared.error(f"final {name}", f"{x} (appended with OK) is missing")
        for x in sorted((have - want) & expunged)[:20]:
            shared.error(f"final {name}", f"{x} was expunged but is still there")
    for k, v in sorted(shared.counts.items()):
        print(f"count {k} {v}")
    for e in shared.errors:
        print(f"error {e}")


if __name__ == "__main__":
    main()
