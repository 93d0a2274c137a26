#!/usr/bin/env bash
# Installs the real peers the test suite runs against, from Debian's packages: Dovecot IMAP (with the oauth2
# passdb), Postfix (a second SMTP peer that writes real delivery status notifications), Chromium (driven by
# playwright-core for the admin UI tests), and systemd-analyze and nginx (which check the files in deploy/).
# Idempotent: installs only what is missing, and runs `apt-get update` at most once. Needs root (CI runs as root).
set -euo pipefail

missing=()
dovecot --version >/dev/null 2>&1 || missing+=(dovecot-core dovecot-imapd)
[ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Dovecot's app-only check (test/support/dovecot.ts, appRole) asks the emulator's introspection with curl.
command -v curl >/dev/null 2>&1 || missing+=(curl)
# test/deploy checks deploy/mailbridge.service with systemd-analyze and deploy/nginx.conf with nginx -t.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: dovecot $(dovecot --version | cut -d' ' -f1), postfix, chromium, curl, systemd-analyze and nginx already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-peers: need root (or sudo) to install ${missing[*]}" >&2; exit 1
  fi
fi

$SUDO apt-get update
# Postfix's debconf question (what kind of mail server) answered "No configuration": test/support/postfix.ts
# writes a standalone main.cf per instance and nothing reads /etc/postfix/main.cf.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

# The dovecot postinst may try to start the system service (policy-rc.d usually denies it). The config in
# /etc/dovecot is never used by the tests: test/support/dovecot.ts writes a standalone config per instance.
echo "install-peers: installed ${missing[*]}"
