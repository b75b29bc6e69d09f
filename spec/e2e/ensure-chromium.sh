#!/bin/sh
# Installs Debian's chromium for the end-to-end tests when it is missing.
# playwright-core drives it at /usr/bin/chromium; no browser is downloaded by npm.
set -e
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
command -v chromium >/dev/null 2>&1
