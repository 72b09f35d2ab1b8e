#!/usr/bin/env bash
# setup-redis.sh makes sure `redis-server` is on PATH, installing the Debian package
# when it is missing. testkit/redistest starts it on a free loopback port for the
# integration tests. Idempotent: does nothing when redis-server is already installed.
# Prints the path of redis-server on stdout.
set -euo pipefail

if bin="$(command -v redis-server 2>/dev/null)"; then
	echo "$bin"
	exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
	echo "setup-redis: redis-server is not installed; run as root: apt-get update && apt-get install -y redis-server" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "setup-redis: redis-server is not installed and apt-get is missing; install redis-server (7.x) with your package manager" >&2
	exit 1
fi

echo "setup-redis: installing redis-server with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -q >&2 || ! apt-get install -y -q --no-install-recommends redis-server >&2; then
	echo "setup-redis: apt-get could not install redis-server; are the Debian mirrors reachable?" >&2
	exit 1
fi
# The Debian package may start a system service on port 6379; the tests never use it.
command -v redis-server
