"""smtp_pipe.py - run smtpd on a pipe and talk to it as a client that
waits for each reply (so smtpd's pipelining check holds for a "network"
client named by TCPREMOTEIP). Sends one message per file given.

usage: smtp_pipe.py SMTPD CONFIG HELO SENDER RCPT MESSAGE-FILE...
prints each reply line of the session to stdout.
"""
import subprocess, sys

smtpd, config, helo, sender, rcpt = sys.argv[1:6]
files = sys.argv[6:]
p = subprocess.Popen([smtpd, "-C", config], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def reply():
    lines = []
    while True:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    for l in lines:
        print(l)
    sys.stdout.flush()
    return lines[-1] if lines else ""


def cmd(c):
    p.stdin.write(c.encode() + b"\r\n")
    p.stdin.flush()
    return reply()


reply()
cmd("EHLO " + helo)
for f in files:
    data = open(f, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not cmd("MAIL FROM:<%s>" % sender).startswith("250"):
        continue
    cmd("RCPT TO:<%s>" % rcpt)
    if cmd("DATA").startswith("354"):
        body = b"".join(b"." + l if l.startswith(b".") else l for l in data.splitlines(True))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        p.stdin.write(body + b".\r\n")
        p.stdin.flush()
        reply()
cmd("QUIT")
p.wait()
