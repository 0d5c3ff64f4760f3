#!/bin/sh
# bench-install.sh: install the Debian packages a bench peer needs, if
# missing, without starting or enabling any service they bring (called by
# the bench scripts; needs root).
#
# A mail host's own Postfix or Dovecot is left as it is: packages already
# installed are not touched, and nothing is installed that would remove
# another package (installing postfix removes exim4, for one: the script
# stops and says so). While apt-get runs, a policy-rc.d that answers 101
# keeps every service it installs from starting (unless one exists
# already); afterwards the services of the packages it installed are
# disabled again (their postinst enables them), so none starts at the
# next boot either. Postfix is installed as "No configuration": no
# /etc/postfix/main.cf is written, as the bench runs Postfix from a
# configuration directory of its own.
#
# Usage: sh scripts/bench-install.sh PACKAGE...
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf '%s\n' "bench-install: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }

missing=
for p in "$@"; do
    dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/bench-install.XXXXXX)
made_policy=
cleanup() {
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    made_policy=
    [ -z "$log" ] || rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# simulate - what apt-get would do; refreshes the package lists once if
# the packages are not found.
simulate() {
    # shellcheck disable=SC2086
    apt-get -s install -y --no-install-recommends $missing 2>&1
}
if ! plan=$(simulate); then
    apt-get update -q >>"$log" 2>&1 || true
    plan=$(simulate) || { say "cannot install$missing:"; printf '%s\n' "$plan" | tail -n 5 >&2; exit 1; }
fi
removes=$(printf '%s\n' "$plan" | awk '/^Remv /{ print $2 }' | tr '\n' ' ')
if [ -n "$removes" ]; then
    say "installing$missing would remove: $removes"
    say "the bench does not replace this machine's packages; install$missing by hand if that is what you want"
    exit 1
fi
new_pkgs=$(printf '%s\n' "$plan" | awk '/^Inst /{ print $2 }')

if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# written by posthorn scripts/bench-install.sh for one apt-get run\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
case " $missing " in
    *" postfix "*)
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections ;;
esac
say "installing$missing (no service started or enabled)"
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
    say "apt-get install failed:"
    tail -n 20 "$log" >&2
    exit 1
fi
[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
made_policy=

# The postinst scripts enable their units and init scripts; the bench
# starts its own instances, so the services stay off at boot as well.
for pkg in $new_pkgs; do
    for unit in $(dpkg -L "$pkg" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.(service|socket)$' | xargs -r -n1 basename); do
        if command -v deb-systemd-helper >/dev/null; then
            deb-systemd-helper disable "$unit" >/dev/null 2>&1 || say "could not disable $unit"
        fi
    done
    for init in $(dpkg -L "$pkg" 2>/dev/null | grep -E '^/etc/init\.d/[^/]+$' | xargs -r -n1 basename); do
        update-rc.d "$init" disable >/dev/null 2>&1 || say "could not disable /etc/init.d/$init"
    done
done
say "installed$missing"
