#!/usr/bin/env bash
# setup-apt.sh COMMAND PACKAGE makes sure COMMAND is on PATH, installing the
# Debian package PACKAGE with apt-get when it is missing (as
# setup-redis.sh does for redis-server). Idempotent: does nothing when
# COMMAND is already there. Prints the path of COMMAND on stdout; says
# clearly what to do when it cannot install.
#   promtool  prometheus  (promtool test rules deploy/prometheus/alerts_test.yaml)
#   chromium  chromium    (the status page's headless browser test)
set -euo pipefail
cmd="${1:?usage: setup-apt.sh COMMAND PACKAGE}"
pkg="${2:?usage: setup-apt.sh COMMAND PACKAGE}"

if bin="$(command -v "$cmd" 2>/dev/null)"; then
	echo "$bin"
	exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
	echo "setup-apt: $cmd is not installed; run as root: apt-get update && apt-get install -y --no-install-recommends $pkg" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "setup-apt: $cmd is not installed and apt-get is missing; install the package that provides $cmd ($pkg on Debian) with your package manager" >&2
	exit 1
fi
echo "setup-apt: installing $pkg (for $cmd) with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "$pkg" >&2; then
	if ! apt-get update -q >&2 || ! apt-get install -y -q --no-install-recommends "$pkg" >&2; then
		echo "setup-apt: apt-get could not install $pkg; are the Debian mirrors reachable?" >&2
		exit 1
	fi
fi
# Debian's prometheus package may start a service on port 9090; nothing here uses it.
if ! bin="$(command -v "$cmd" 2>/dev/null)"; then
	echo "setup-apt: $pkg is installed but $cmd is not on PATH" >&2
	exit 1
fi
echo "$bin"
