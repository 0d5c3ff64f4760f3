"""dkim_check.py - dkimpy's verdict on every DKIM-Signature of messages
that reached the sink (its JSON files), with the keys in KEYS.

usage: /usr/bin/python3 dkim_check.py KEYS JSON...
prints per message: the file, then "pass"/"fail" per signature, top first.
"""
import json, sys

import dkim

keys = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]) if l.strip())


def dnsfunc(name, timeout=5):
    return keys.get(name.decode().rstrip("."), "").encode()


for path in sys.argv[2:]:
    msg = json.load(open(path))["content"].encode("utf-8", "surrogateescape")
    d = dkim.DKIM(msg)
    n = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
    out = []
    for i in range(n):
        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
        out.append("pass" if ok else "fail")
    print(path, " ".join(out) if out else "unsigned")
