"""spf_oracle.py - pyspf's verdicts for a list of SPF checks, asking the
loopback DNS server on PORT (Debian's python3-spf over dnspython).

usage: /usr/bin/python3 spf_oracle.py PORT CASES.json
CASES.json: [[ip, sender, helo], ...]; prints one result per line.
"""
import json, sys

import dns.resolver

r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
r.lifetime = 5
dns.resolver.default_resolver = r

import spf

for ip, sender, helo in json.load(open(sys.argv[2])):
    res, _exp = spf.check2(i=ip, s=sender, h=helo, timeout=10)
    print(res)
