#!/usr/bin/env bash
# Installs the real peers the test suite runs against (Dovecot IMAP with the oauth2 passdb).
# Idempotent: does nothing when `dovecot --version` already works. Needs root (CI runs as root).
set -euo pipefail

if dovecot --version >/dev/null 2>&1; then
  echo "install-peers: dovecot $(dovecot --version) already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-peers: need root (or sudo) to install dovecot" >&2; exit 1
  fi
fi

$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-core dovecot-imapd

# The postinst may try to start the system service (policy-rc.d usually denies it). The config in
# /etc/dovecot is never used by the tests: test/support/dovecot.ts writes a standalone config per instance.
echo "install-peers: installed dovecot $(dovecot --version)"
