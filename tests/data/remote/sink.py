"""sink.py - an SMTP server for the remote-delivery tests, scripted by the
recipient's local part:

  ok...     accepted
  temp...   450 4.2.0 at RCPT
  perm...   550 5.1.1 at RCPT
  drop...   accepted, but the connection is dropped after the final dot
  slow...   accepted, the final reply comes after --slow seconds
  stall...  no answer to RCPT for --slow seconds

Each accepted message is written to OUTDIR/<n>.json with the envelope,
the MAIL/RCPT parameters, whether TLS and AUTH were used, and the content.

usage: sink.py PORT OUTDIR [--tls CERT KEY] [--auth USER PASS] [--slow SECONDS] [--size BYTES] [--host ADDRESS] [--tls-broken CERT KEY]
"""
import asyncio, json, os, ssl, sys, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

args = sys.argv[1:]
port, outdir = int(args[0]), args[1]
opts = {}
i = 2
while i < len(args):
    if args[i] == "--tls":
        opts["tls"] = (args[i + 1], args[i + 2]); i += 3
    elif args[i] == "--auth":
        opts["auth"] = (args[i + 1], args[i + 2]); i += 3
    elif args[i] == "--tls-broken":
        # STARTTLS offered, but only TLS 1.0: no modern client gets through.
        opts["tls"] = (args[i + 1], args[i + 2]); opts["broken"] = True; i += 3
    elif args[i] == "--host":
        opts["host"] = args[i + 1]; i += 2
    elif args[i] == "--size":
        opts["size"] = int(args[i + 1]); i += 2
    elif args[i] == "--slow":
        opts["slow"] = float(args[i + 1]); i += 2
    else:
        sys.exit("sink.py: bad argument " + args[i])
count = [0]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = address.split("@")[0]
        if lp.startswith("temp"):
            return "450 4.2.0 <%s>: Recipient address rejected: mailbox busy" % address
        if lp.startswith("stall"):
            await asyncio.sleep(opts.get("slow", 5))
        if lp.startswith("perm"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("drop") for r in envelope.rcpt_tos):
            server.transport.close()
            return "451 4.3.0 never seen"
        if any(r.startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(opts.get("slow", 5))
        count[0] += 1
        rec = {
            "from": envelope.mail_from,
            "rcpts": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "tls": session.ssl is not None,
            "peer": session.peer[1],
            "auth": (session.auth_data.login.decode() if session.authenticated and session.auth_data else None),
            "content": envelope.original_content.decode("utf-8", "surrogateescape"),
        }
        name = "%d-%d" % (time.time_ns(), count[0])
        tmp = os.path.join(outdir, "." + name)
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(outdir, name + ".json"))
        return "250 2.0.0 Ok: queued as S%d" % count[0]


def authenticator(server, session, envelope, mechanism, auth_data):
    user, pw = opts["auth"]
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == pw
    return AuthResult(success=ok, auth_data=auth_data)


kw = dict(hostname=opts.get("host", "127.0.0.1"), port=port, server_hostname="sink.test", enable_SMTPUTF8=True)
if "size" in opts:
    kw["data_size_limit"] = opts["size"]
if "tls" in opts:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*opts["tls"])
    if opts.get("broken"):
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    kw["tls_context"] = ctx
if "auth" in opts:
    kw["authenticator"] = authenticator
    kw["auth_require_tls"] = True
c = Controller(Handler(), **kw)
c.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
