#!/bin/sh
# Checks that what the build and the tests need is installed, and installs
# what is missing with apt-get when it runs as root (Debian, Ubuntu).
# As another user it prints the exact command to run, and fails.
#
#   scripts/deps.sh          what `make test` and `make run` need
#   scripts/deps.sh bench    that, and what `make bench` and TUTORIAL.md use too
#   scripts/deps.sh --check  only report, never install
set -u

check_only=0
bench=0
for arg in "$@"; do
	case "$arg" in
	--check) check_only=1 ;;
	bench) bench=1 ;;
	*) echo "usage: $0 [bench] [--check]" >&2; exit 2 ;;
	esac
done

missing=""
need() {	# need PACKAGE: add it to the list once
	case " $missing " in *" $1 "*) ;; *) missing="$missing $1" ;; esac
}

command -v cc >/dev/null 2>&1 || need gcc
[ -e /usr/include/stdio.h ] || need libc6-dev
command -v pkg-config >/dev/null 2>&1 || need pkg-config
command -v strace >/dev/null 2>&1 || need strace
if command -v pkg-config >/dev/null 2>&1; then
	pkg-config --exists 'liburing >= 2.3' || need liburing-dev
	pkg-config --exists check || need check
else
	need liburing-dev
	need check
fi

if [ "$bench" = 1 ]; then
	command -v wrk >/dev/null 2>&1 || need wrk
	command -v ab >/dev/null 2>&1 || need apache2-utils
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need nginx-light
	command -v curl >/dev/null 2>&1 || need curl
	command -v h2load >/dev/null 2>&1 || need nghttp2-client
fi

[ -z "$missing" ] && exit 0
missing=${missing# }
cmd="apt-get install -y $missing"

if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "missing: $missing" >&2
	if command -v apt-get >/dev/null 2>&1; then
		echo "install them with:  sudo apt-get update && sudo $cmd" >&2
	else
		echo "install them with your distribution's package manager (liburing >= 2.3, Check, pkg-config, strace; for make bench: wrk, ab, nginx)" >&2
	fi
	exit 1
fi

echo "installing: $missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q $missing >/dev/null || { echo "$cmd failed" >&2; exit 1; }
if ! pkg-config --exists 'liburing >= 2.3'; then
	echo "liburing >= 2.3 is needed; this distribution has $(pkg-config --modversion liburing 2>/dev/null || echo none)" >&2
	exit 1
fi
echo "installed: $missing"
