#!/bin/sh
# Installs etcd (Debian's etcd-server, plus etcd-client for etcdctl) when `etcd`
# is not on the PATH. Used by `npm run bench:kv`; safe to run again.
# Needs root (or sudo) and apt; does nothing when etcd is already there.
set -eu

if command -v etcd >/dev/null 2>&1; then
  echo "etcd already installed: $(command -v etcd)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "etcd is missing and apt-get is not available: install etcd 3.4+ yourself and put it on the PATH" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "etcd is missing and installing it needs root: run 'apt-get install etcd-server etcd-client' as root" >&2
    exit 1
  fi
fi

if ! apt-cache policy etcd-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  $SUDO apt-get update -q
fi
# Debian's package starts a system etcd through systemd where there is one; the benchmark
# runs its own members on free ports, so a system service (if any) does not get in the way.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends etcd-server etcd-client
command -v etcd >/dev/null 2>&1 || { echo "etcd-server installed but no etcd on the PATH" >&2; exit 1; }
echo "installed $(etcd --version | head -1)"
