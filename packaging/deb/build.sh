#!/usr/bin/env bash
# Build the ClawGuard .deb from an already built binary, with dpkg-deb (no extra tool to
# install: cargo-deb would cost CI several minutes of compilation for the same result).
# Usage: packaging/deb/build.sh [BINARY] [OUTDIR]   (defaults: target/release/clawguard, target/debian)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/target/release/clawguard}"
out="${2:-$root/target/debian}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# Stripped, as Debian ships binaries (the debug symbols stay in the build tree).
install -D -m 0755 --strip "$bin" "$stage/usr/bin/clawguard"
install -D -m 0644 "$here/clawguard.service" "$stage/lib/systemd/system/clawguard.service"
install -D -m 0640 "$here/config.toml" "$stage/etc/clawguard/config.toml"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/clawguard/README.md"
install -d -m 0755 "$stage/DEBIAN"
install -m 0755 "$here/postinst" "$here/postrm" "$stage/DEBIAN/"
echo /etc/clawguard/config.toml > "$stage/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: clawguard
Version: $version
Architecture: $arch
Maintainer: ClawGuard team <clawguard@localhost>
Section: net
Priority: optional
Installed-Size: $size
Depends: adduser, libc6
Description: data-leak prevention proxy for AI agents
 A forward proxy (and ICAP service for Squid) that inspects every outbound
 request of an AI agent for credentials and personal data, and blocks, redacts
 or logs them. Runs as the unprivileged user clawguard under systemd.
CONTROL
mkdir -p "$out"
deb="$out/clawguard_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
