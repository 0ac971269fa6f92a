#!/bin/sh
# Installs the Debian packages that building and testing storekeep need.
# Idempotent and quiet: packages already present are not touched, so a
# second run costs one dpkg query. Needs root (or sudo) only when
# something is missing.
set -eu

PKGS="build-essential cmake pkg-config git
libuv1-dev libssl-dev libsqlite3-dev libyaml-dev libjansson-dev
libcmocka-dev
libsodium-dev libzstd-dev libpq-dev postgresql postgresql-client
libcurl4-openssl-dev openssl python3-aiosmtpd prometheus prometheus-alertmanager
monitoring-plugins-basic
wrk
clang libclang-rt-14-dev
python3 python3-pytest python3-requests
curl procps"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: need root to install:$missing" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
