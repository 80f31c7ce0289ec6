#!/usr/bin/env bash
# Package test (CI): build the .deb from BINARY, install it with dpkg -i, check files,
# modes, the service user and `systemd-analyze verify` of the unit, run
# `clawguard --version` and a short `clawguard run` as the service user, then purge.
# Usage: packaging/deb/test.sh [BINARY]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
deb="$("$here/build.sh" "${1:-}")"
fail() { echo "deb test: FAILED: $*" >&2; exit 1; }
cleanup() { dpkg --purge clawguard >/dev/null 2>&1 || true; }
trap cleanup EXIT

dpkg -i "$deb" >/dev/null || fail "dpkg -i"
getent passwd clawguard >/dev/null || fail "no clawguard user"
[ "$(getent passwd clawguard | cut -d: -f7)" = /usr/sbin/nologin ] || fail "login shell"
mode() { stat -c '%a %U:%G' "$1"; }
[ "$(mode /usr/bin/clawguard)" = "755 root:root" ] || fail "binary: $(mode /usr/bin/clawguard)"
[ "$(mode /lib/systemd/system/clawguard.service)" = "644 root:root" ] || fail "unit mode"
[ "$(mode /etc/clawguard/config.toml)" = "640 root:clawguard" ] || fail "config: $(mode /etc/clawguard/config.toml)"
for d in /var/lib/clawguard /var/lib/clawguard/certs /var/log/clawguard; do
    [ "$(mode "$d")" = "700 clawguard:clawguard" ] || fail "$d: $(mode "$d")"
done
dpkg -L clawguard | grep -qx /usr/bin/clawguard || fail "dpkg -L"
systemd-analyze verify /lib/systemd/system/clawguard.service || fail "systemd-analyze verify"
runuser -u clawguard -- /usr/bin/clawguard --version | grep -q '^clawguard ' || fail "--version"

# A short run as the service user with the packaged config (ephemeral ports).
log="$(mktemp)"
# setpriv execs in place (runuser would stand between the signal and the process).
setpriv --reuid clawguard --regid clawguard --init-groups -- \
    /usr/bin/clawguard run --config /etc/clawguard/config.toml \
    --listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    grep -q '^clawguard listening on ' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "clawguard run exited"; }
    sleep 0.1
done
grep -q '^clawguard listening on ' "$log" || { cat "$log"; fail "clawguard run did not start"; }
admin="$(sed -n 's/^clawguard admin listening on //p' "$log")"
curl -sf "http://$admin/readyz" >/dev/null || fail "readyz"
[ -f /var/lib/clawguard/certs/clawguard-ca.pem ] || fail "CA not created in the state directory"
[ "$(stat -c '%U' /var/lib/clawguard/certs/clawguard-ca.pem)" = clawguard ] || fail "CA owner"
kill -TERM "$pid"
wait "$pid" || fail "clawguard run did not stop cleanly on SIGTERM"
echo "deb test: OK ($deb)"
