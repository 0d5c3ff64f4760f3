"""dkim_corpus.py - messages signed by dkimpy (Debian's python3-dkim),
some then changed, and dkimpy's own verdict on each signature: the corpus
smtpd's DKIM verifier is compared with.

usage: /usr/bin/python3 dkim_corpus.py OUTDIR
writes OUTDIR/keys.txt ("name<TAB>TXT text" per line, for dnsmasq),
OUTDIR/NN.eml and OUTDIR/expected.json ({"NN": [true, false, ...]}).
"""
import base64, json, os, subprocess, sys

import dkim
import nacl.signing

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
D = b"signer.test"


def rsa(bits):
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits],
        check=True, capture_output=True).stdout
    pub = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         check=True, capture_output=True).stdout
    return pem, base64.b64encode(pub).decode()


keys = {}
rsa2048, p2048 = rsa(2048)
rsa1024, p1024 = rsa(1024)
rsa512, p512 = rsa(512)
ed = nacl.signing.SigningKey.generate()
ed_priv = base64.b64encode(bytes(ed))
ed_pub = base64.b64encode(bytes(ed.verify_key)).decode()
keys["r2048._domainkey.signer.test"] = "v=DKIM1; k=rsa; p=" + p2048
keys["r1024._domainkey.signer.test"] = "v=DKIM1; k=rsa; p=" + p1024
keys["r512._domainkey.signer.test"] = "v=DKIM1; k=rsa; p=" + p512
keys["ed._domainkey.signer.test"] = "v=DKIM1; k=ed25519; p=" + ed_pub
keys["revoked._domainkey.signer.test"] = "v=DKIM1; k=rsa; p="
keys["sha1only._domainkey.signer.test"] = "v=DKIM1; k=rsa; h=sha1; p=" + p2048
keys["notmail._domainkey.signer.test"] = "v=DKIM1; k=rsa; s=tlsrpt; p=" + p2048
keys["strict._domainkey.signer.test"] = "v=DKIM1; k=rsa; t=s; p=" + p2048
keys["testing._domainkey.signer.test"] = "v=DKIM1; k=rsa; t=y; p=" + p2048
keys["wrongk._domainkey.signer.test"] = "v=DKIM1; k=ed25519; p=" + p2048[:44]
# No record for "missing".

BASE = (b"From: Ann Example <ann@signer.test>\r\nTo: bob@mail.test\r\n"
        b"Subject: case %s\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
        b"Message-ID: <%s@signer.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hello  Bob,\r\n\r\nthe  numbers:\t1 2 3   \r\n\r\n\r\n")
HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


def dnsfunc(name, timeout=5):
    return keys.get(name.decode().rstrip("."), "").encode()


def sign(msg, sel, key, alg=b"rsa-sha256", canon=(b"relaxed", b"relaxed"), **kw):
    return dkim.sign(msg, sel, D, key, signature_algorithm=alg,
                     canonicalize=canon, include_headers=kw.pop("headers", HEADERS), **kw) + msg


cases = {}


def case(name, build):
    msg = BASE.replace(b"%s", name.encode())
    cases[name] = build(msg)


case("01", lambda m: sign(m, b"r2048", rsa2048))
case("02", lambda m: sign(m, b"r2048", rsa2048, canon=(b"simple", b"simple")))
case("03", lambda m: sign(m, b"r2048", rsa2048, canon=(b"relaxed", b"simple")))
case("04", lambda m: sign(m, b"ed", ed_priv, alg=b"ed25519-sha256"))
case("05", lambda m: sign(m, b"r1024", rsa1024))
case("06", lambda m: sign(m, b"r512", rsa512))
case("07", lambda m: sign(m, b"r2048", rsa2048).replace(b"numbers", b"NUMBERS"))
case("08", lambda m: sign(m, b"r2048", rsa2048).replace(b"Subject: case", b"Subject: Case"))
# Relaxed survives white space changes; simple does not.
case("09", lambda m: sign(m, b"r2048", rsa2048).replace(b"Hello  Bob", b"Hello Bob"))
case("10", lambda m: sign(m, b"r2048", rsa2048, canon=(b"simple", b"simple")).replace(b"Hello  Bob", b"Hello Bob"))
case("11", lambda m: sign(m, b"r2048", rsa2048, length=True) + b"appended after signing\r\n")
case("12", lambda m: sign(m, b"revoked", rsa2048))
case("13", lambda m: sign(m, b"missing", rsa2048))
case("14", lambda m: sign(m, b"sha1only", rsa2048))
case("15", lambda m: sign(m, b"notmail", rsa2048))
case("16", lambda m: sign(m, b"strict", rsa2048, identity=b"ann@news.signer.test"))
case("17", lambda m: sign(m, b"strict", rsa2048, identity=b"ann@signer.test"))
case("18", lambda m: sign(m, b"testing", rsa2048))
case("19", lambda m: sign(m, b"wrongk", rsa2048))
# Two signatures, one good and one broken by a later change to To:.
case("20", lambda m: sign(sign(m, b"ed", ed_priv, alg=b"ed25519-sha256", headers=[b"from", b"subject"]),
                          b"r2048", rsa2048).replace(b"To: bob", b"To: rob"))
# A From: added above the signed one: h= names From once, so it still
# verifies (dkimpy and RFC alike) -- the reason signers over-sign.
case("21", lambda m: b"From: mallory@evil.test\r\n" + sign(m, b"r2048", rsa2048))
case("22", lambda m: b"From: mallory@evil.test\r\n" + sign(m, b"r2048", rsa2048, headers=HEADERS + [b"from"]))
case("23", lambda m: sign(m, b"r2048", rsa2048).replace(b"\r\n\r\n\r\n", b"\r\n"))
case("24", lambda m: sign(m.replace(b"Hello", "Grüße".encode()), b"ed", ed_priv, alg=b"ed25519-sha256"))
# An l= that claims more than the body has.
case("26", lambda m: sign(m, b"r2048", rsa2048, length=True).replace(b"the  numbers:\t1 2 3   \r\n", b""))

expected = {}
for name, msg in sorted(cases.items()):
    with open(os.path.join(out, name + ".eml"), "wb") as f:
        f.write(msg)
    d = dkim.DKIM(msg, minkey=1024)
    n = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
    verdicts = []
    for i in range(n):
        try:
            verdicts.append(bool(dkim.DKIM(msg, minkey=1024).verify(idx=i, dnsfunc=dnsfunc)))
        except Exception:
            verdicts.append(False)
    expected[name] = verdicts
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
with open(os.path.join(out, "keys.txt"), "w") as f:
    for k, v in keys.items():
        f.write("%s\t%s\n" % (k, v))
