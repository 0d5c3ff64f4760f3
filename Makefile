# Posthorn: build, test, run, bench, install.
#   make            build release binaries
#   make test       unit and end-to-end tests, and the man page lint
#   make run        a throwaway instance under ./run/, with mail flowing through it
#   make bench      Posthorn beside Postfix and Dovecot instances of its own (README: make bench)
#   make fuzz       a minute of cargo fuzz on each parser of untrusted input
#   make install    PREFIX=/usr/local DESTDIR= (root without DESTDIR also sets up the spool)

PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec/posthorn
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/posthorn
SYSCONFDIR ?= /etc
CARGO      ?= cargo

HELPERS = enqueue qrun deliver pop3d smtpd imapd remote
LINKS   = mailq newaliases runq

.PHONY: all build test man-lint run stop bench fuzz install uninstall clean

all: build

build:
	POSTHORN_LIBEXEC=$(LIBEXECDIR) $(CARGO) build --release --locked --workspace --bins

test: man-lint
	$(CARGO) build --locked --workspace --bins
	$(CARGO) test --locked --workspace

man-lint:
	@command -v mandoc >/dev/null || { echo "man-lint: mandoc is not installed (apt-get install mandoc)"; exit 1; }
	mandoc -Tlint -W warning man/*.[1-8]

run: build
	sh scripts/run.sh

stop:
	sh scripts/run.sh stop

bench: build
	sh scripts/bench.sh

# Coverage-guided fuzzing of the parsers that read untrusted input, a minute
# each (FUZZ_SECONDS). cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = sasl proxy passwd auth_request aliases envelope smtp_command smtp_data imap_command mime dns_answer remote_data sieve dkim_tags dkim_message spf_record dmarc_record
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DOCDIR)
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 target/release/sendmail $(DESTDIR)$(SBINDIR)/sendmail
	for l in $(LINKS); do ln -sf sendmail $(DESTDIR)$(SBINDIR)/$$l; done
	install -m 0755 target/release/dkimkey $(DESTDIR)$(SBINDIR)/dkimkey
	for h in $(HELPERS); do install -m 0755 target/release/$$h $(DESTDIR)$(LIBEXECDIR)/$$h; done
	for p in man/*.5; do install -m 0644 $$p $(DESTDIR)$(MANDIR)/man5/; done
	for p in man/*.7; do install -m 0644 $$p $(DESTDIR)$(MANDIR)/man7/; done
	for p in man/*.8; do install -m 0644 $$p $(DESTDIR)$(MANDIR)/man8/; done
	for l in $(LINKS); do ln -sf sendmail.8 $(DESTDIR)$(MANDIR)/man8/$$l.8; done
	install -d $(DESTDIR)$(SYSCONFDIR)/posthorn
	test -e $(DESTDIR)$(SYSCONFDIR)/posthorn/posthorn.toml || install -m 0644 scripts/posthorn.toml $(DESTDIR)$(SYSCONFDIR)/posthorn/posthorn.toml
	install -m 0644 scripts/posthorn.toml scripts/qrun.service scripts/qrun.cron $(DESTDIR)$(DOCDIR)/
	install -m 0644 scripts/pop3d.socket scripts/pop3d@.service scripts/pop3s.socket scripts/pop3s@.service scripts/pop3d.inetd $(DESTDIR)$(DOCDIR)/
	install -m 0644 scripts/smtpd.socket scripts/smtpd@.service scripts/submission.socket scripts/submission@.service scripts/smtps.socket scripts/smtps@.service $(DESTDIR)$(DOCDIR)/
	install -m 0644 scripts/imapd.socket scripts/imapd@.service scripts/imaps.socket scripts/imaps@.service scripts/imapd.inetd $(DESTDIR)$(DOCDIR)/
	install -m 0644 scripts/smtpd.inetd scripts/smtpd.xinetd scripts/smtpd.tcpserver $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(DOCDIR)/sieve
	install -m 0644 scripts/sieve/spam-to-junk.sieve $(DESTDIR)$(DOCDIR)/sieve/
	install -d $(DESTDIR)$(DOCDIR)/fail2ban
	install -m 0644 scripts/fail2ban/filter.d/posthorn.conf $(DESTDIR)$(DOCDIR)/fail2ban/filter.conf
	install -m 0644 scripts/fail2ban/filter.d/posthorn-smtpd.conf $(DESTDIR)$(DOCDIR)/fail2ban/filter-smtpd.conf
	install -m 0644 scripts/fail2ban/jail.d/posthorn.conf $(DESTDIR)$(DOCDIR)/fail2ban/jail.conf
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then sh scripts/setup-system.sh $(LIBEXECDIR) $(SYSCONFDIR)/posthorn/posthorn.toml; \
	else echo "install: files only; as root, run scripts/setup-system.sh $(LIBEXECDIR) to create the posthorn user, the spool and the setgid enqueue"; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sendmail $(DESTDIR)$(SBINDIR)/dkimkey $(addprefix $(DESTDIR)$(SBINDIR)/,$(LINKS))
	rm -rf $(DESTDIR)$(LIBEXECDIR)
	rm -f $(DESTDIR)$(MANDIR)/man8/sendmail.8 $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(addsuffix .8,$(LINKS) $(HELPERS) dkimkey))
	rm -f $(DESTDIR)$(MANDIR)/man5/posthorn.toml.5 $(DESTDIR)$(MANDIR)/man5/aliases.5 $(DESTDIR)$(MANDIR)/man7/posthorn.7

clean:
	$(CARGO) clean
	rm -rf run
