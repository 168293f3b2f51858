#!/usr/bin/env bash
# vmtest.sh - the steps on the kernels attendees run: boots one of Debian's
# kernels under QEMU, runs the doctor and every step's Check suites inside,
# and prints a table per step. `make vmtest [KERNEL=6.1|6.12|PATH]` runs it.
#
#   scripts/vmtest.sh 6.1        Debian 12's own kernel (newest 6.1.0-N)
#   scripts/vmtest.sh 6.12       Debian 12's updates kernel (6.12.N+deb12)
#   scripts/vmtest.sh PATH       a bzImage (vmlinuz) or a linux-image .deb
#
# Needs root: it installs qemu-system-x86 and busybox-static with apt-get
# when they are missing, and downloads the kernel package with
# `apt-get download` into .vmtest/cache/ (ignored by git, kept between runs).
#
# The guest is an initramfs built here: busybox, strace, the servers,
# scripts/doctor and tests/run_tests, each with the shared libraries it
# links copied in; loopback is its only network. It boots with KVM when
# /dev/kvm boots the kernel within VMTEST_KVM_PROBE seconds (a nested,
# paravirtual /dev/kvm may hang a stock kernel in its decompressor), and
# under TCG otherwise; the output says which. Emulated, the guest is
# several times slower than the host (the table's header gives a shell
# loop's ratio, for information); Check's timeouts get CK_TIMEOUT_MULTIPLIER=3,
# and the timing checks about the server measure on the guest's own clock:
# those that depend on the machine's speed scale themselves by what they
# measured, and say so in the log.
#
# Bounded: the whole guest run is killed after VMTEST_TIMEOUT seconds (1800),
# each suite after VMTEST_SUITE_TIMEOUT (600). QEMU runs under nice -n 10.
# Temporary files and the QEMU process are removed on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

kernel=${1:-6.1}
# For a closer look at one failure: VMTEST_STEPS=step06_multishot_bufring
# VMTEST_SUITES="main keepalive faults close" VMTEST_CASE=tcase, and
# VMTEST_TRACE=1 prints io_uring's tracepoints after each suite.
trace=${VMTEST_TRACE:+1}
cache=$repo/.vmtest/cache
total_timeout=${VMTEST_TIMEOUT:-1800}
suite_timeout=${VMTEST_SUITE_TIMEOUT:-600}
kvm_probe=${VMTEST_KVM_PROBE:-30}

if [ "$(id -u)" != 0 ]; then
	cat >&2 <<-EOF
	make vmtest needs root: it installs qemu-system-x86 and busybox-static
	with apt-get when missing and downloads Debian's kernel package with
	apt-get download. Run it as root, e.g.: sudo make vmtest KERNEL=$kernel
	EOF
	exit 1
fi

missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
# The guest has no libraries for busybox: it must be busybox-static's.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	missing="$missing busybox-static"
fi
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
if [ -n "$missing" ]; then
	echo "vmtest: installing$missing"
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
fi

tmp=$(mktemp -d /tmp/vmtest.XXXXXX)
qemu_pid=""
# reap PID: until it has exited, at most 30 s, then for good. QEMU is
# disowned when it starts (boot()): a QEMU that KVM makes abort would have
# the shell print "Aborted" as if the test had failed; so no `wait` here.
reap() {
	local i
	for i in $(seq 150); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.2
	done
	kill -9 "$1" 2>/dev/null || true
}
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		reap "$qemu_pid"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- the kernel ----------------------------------------------------------

# newest PACKAGE-REGEX: the highest version of the packages matching it.
newest() {
	apt-cache search --names-only "$1" | cut -d' ' -f1 | sort -V | tail -1
}

deb=""
case "$kernel" in
6.1)	pattern='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
6.12)	pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
*)	pattern="" ;;
esac
if [ -n "$pattern" ]; then
	pkg=$(newest "$pattern")
	if [ -z "$pkg" ]; then
		apt-get update -q >/dev/null
		pkg=$(newest "$pattern")
	fi
	[ -n "$pkg" ] || { echo "vmtest: no package matches $pattern (apt-get update?)" >&2; exit 1; }
	mkdir -p "$cache"
	deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$deb" ]; then
		echo "vmtest: apt-get download $pkg"
		# _apt, apt's sandbox user, cannot write into a directory of root's.
		(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >/dev/null)
		mv "$tmp/${pkg}"_*.deb "$cache/"
		deb=$(ls "$cache/${pkg}"_*.deb | sort -V | tail -1)
	fi
elif [ -f "$kernel" ]; then
	case "$kernel" in *.deb) deb=$kernel ;; esac
else
	echo "vmtest: KERNEL=$kernel: give 6.1, 6.12 or the path of a vmlinuz or linux-image .deb" >&2
	exit 2
fi
if [ -n "$deb" ]; then
	vmlinuz=$cache/$(basename "$deb" .deb).vmlinuz
	if [ ! -s "$vmlinuz" ]; then
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
		mv "$tmp"/boot/vmlinuz-* "$vmlinuz"
		rm -rf "$tmp/boot"
	fi
	# Debian's version: 6.1.192-3 is the package linux-image-6.1.0-57-amd64.
	label=$(basename "$deb" .deb | sed 's/^[^_]*_//; s/_amd64$//')
else
	vmlinuz=$kernel
	label=$(basename "$kernel")
fi

# ---- what the guest runs ---------------------------------------------------

echo "vmtest: building the servers, tests/run_tests and scripts/doctor"
make --no-print-directory -s all >/dev/null
make --no-print-directory -s -C tests >/dev/null
make --no-print-directory -s scripts/doctor >/dev/null

root=$tmp/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,usr/bin,repo/tests,repo/scripts}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
# copy FILE: into the guest at the same path, with the libraries it links.
copy() {
	local f lib
	f=$1
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
	for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
copy "$(command -v strace)"
ln -sf /bin/busybox "$root/usr/bin/env"
steps=""
for d in ${VMTEST_STEPS:-step[0-9][0-9]_* epilogue_*}; do
	mkdir -p "$root/repo/$d"
	cp "$d/server" "$root/repo/$d/server"
	copy "$repo/$d/server"
	steps="$steps $d"
done
cp tests/run_tests "$root/repo/tests/"
copy "$repo/tests/run_tests"
cp scripts/doctor "$root/repo/scripts/"
copy "$repo/scripts/doctor"
rm -rf "${root:?}$repo"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

# A loop of shell work on the host, to compare the guest's against.
t0=$(date +%s%N)
"$root/bin/sh" -c 'i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done'
t1=$(date +%s%N)
host_loop=$(( (t1 - t0) / 1000000 ))
[ "$host_loop" -gt 0 ] || host_loop=1

cat >"$root/init" <<EOF
#!/bin/sh
# The guest's init: one line per result, prefixed VMTEST, on the console.
export PATH=/bin:/sbin:/usr/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /root
ip link set lo up
echo "VMTEST up \$(uname -r)"
cs=\$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
echo "VMTEST clocksource \$cs"
cd /repo
if [ -n "$trace" ]; then
	mount -t tracefs tracefs /sys/kernel/tracing
	echo 8192 >/sys/kernel/tracing/buffer_size_kb
	echo 1 >/sys/kernel/tracing/events/io_uring/enable
	echo 0 >/sys/kernel/tracing/tracing_on
fi
# For information: a loop of shell work timed here, divided by the same
# loop's time on the host.
t0=\$(cut -d' ' -f1 /proc/uptime)
i=0; while [ \$i -lt 200000 ]; do i=\$((i + 1)); done
t1=\$(cut -d' ' -f1 /proc/uptime)
guest_ms=\$(awk -v a=\$t0 -v b=\$t1 'BEGIN { printf "%d", (b - a) * 1000 }')
echo "VMTEST loop \$guest_ms"
slow=\$(awk -v g=\$guest_ms -v h=$host_loop 'BEGIN { printf "%.1f", g / h }')
echo "VMTEST slowdown \$slow"
grep -q vmtest.accel=tcg /proc/cmdline && export CK_TIMEOUT_MULTIPLIER=3
echo "VMTEST doctor-begin"
timeout 300 scripts/doctor 2>&1
echo "VMTEST doctor-end \$?"
for step in$steps; do
	for kind in ${VMTEST_SUITES:-main keepalive faults close}; do
		suite=\$step; [ \$kind = main ] || suite=\$step/\$kind
		echo "VMTEST suite-begin \$suite"
		[ -n "$trace" ] && echo 1 >/sys/kernel/tracing/tracing_on
		CK_RUN_SUITE=\$suite STEPS=\$step ${VMTEST_CASE:+CK_RUN_CASE=$VMTEST_CASE} \\
			timeout $suite_timeout tests/run_tests 2>&1
		rc=\$?
		[ -n "$trace" ] && echo 0 >/sys/kernel/tracing/tracing_on && cat /sys/kernel/tracing/trace && echo >/sys/kernel/tracing/trace
		echo "VMTEST suite-end \$suite \$rc"
	done
done
echo "VMTEST done"
poweroff -f
EOF
chmod +x "$root/init"


# boot ACCEL: starts QEMU in the background on a fresh initramfs.
boot() {
	accel=$1
	local opts
	if [ "$accel" = kvm ]; then
		opts=(-accel kvm -cpu max)
	else
		opts=(-accel tcg,thread=multi -cpu max)
	fi
	: >"$tmp/console.log"
	nice -n 10 qemu-system-x86_64 "${opts[@]}" -smp 2 -m 2G -nodefaults \
		-display none -no-reboot -serial "file:$tmp/console.log" \
		-kernel "$vmlinuz" -initrd "$tmp/initramfs.gz" \
		-append "console=ttyS0 panic=-1 quiet rdinit=/init vmtest.accel=$accel" \
		2>"$tmp/qemu.err" &
	qemu_pid=$!
	disown "$qemu_pid"
}

# wait_for LINE SECONDS: until the console has LINE or QEMU exits.
wait_for() {
	local deadline=$((SECONDS + $2))
	while [ $SECONDS -lt $deadline ]; do
		grep -q "^$1" "$tmp/console.log" 2>/dev/null && return 0
		kill -0 "$qemu_pid" 2>/dev/null || return 1
		sleep 1
	done
	return 1
}

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initramfs.gz"
start=$SECONDS
accel=""
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	boot kvm
	if wait_for "VMTEST up" "$kvm_probe"; then
		echo "vmtest: KVM boots $label"
	else
		accel_err=$(grep -m1 -i error "$tmp/qemu.err" || true)
		echo "vmtest: /dev/kvm did not boot $label within ${kvm_probe} s${accel_err:+ ($accel_err)}: emulating (TCG), slower"
		kill "$qemu_pid" 2>/dev/null || true
		reap "$qemu_pid"
		qemu_pid=""
		accel=""
	fi
else
	echo "vmtest: no usable /dev/kvm: emulating (TCG), slower"
fi
if [ -z "$qemu_pid" ]; then
	boot tcg
	wait_for "VMTEST up" 300 || { echo "vmtest: $label did not boot under TCG within 300 s" >&2; tail -20 "$tmp/console.log" >&2; exit 1; }
fi
echo "vmtest: booted $(grep -m1 '^VMTEST up' "$tmp/console.log" | cut -d' ' -f3) under $accel in $((SECONDS - start)) s"

# Progress as the suites finish, until the guest is done or time is up.
shown=0
deadline=$((start + total_timeout))
status=0
while :; do
	n=$(grep -c '^VMTEST suite-end' "$tmp/console.log" || true)
	if [ "$n" -gt "$shown" ]; then
		grep '^VMTEST suite-end' "$tmp/console.log" | sed -n "$((shown + 1)),${n}p" |
			tr -d '\r' | while read -r _ _ s rc; do
				case "$s:$rc" in step0[1-5]_*/keepalive:1) ;; *) echo "vmtest: $s: exit $rc" ;; esac
			done
		shown=$n
	fi
	grep -q '^VMTEST done' "$tmp/console.log" && break
	if ! kill -0 "$qemu_pid" 2>/dev/null; then
		echo "vmtest: the guest stopped before it was done" >&2
		status=1
		break
	fi
	if [ $SECONDS -ge $deadline ]; then
		tail -5 "$tmp/console.log" >&2
		echo "vmtest: not done after ${total_timeout} s (VMTEST_TIMEOUT): stopped" >&2
		status=1
		break
	fi
	sleep 2
done
elapsed=$((SECONDS - start))
reap "$qemu_pid"
qemu_pid=""

log_dir=$repo/.vmtest/log
mkdir -p "$log_dir"
log=$log_dir/$(echo "$label" | tr ' /' '_-').log
tr -d '\r' <"$tmp/console.log" >"$log"

# ---- the table -------------------------------------------------------------

cs=$(sed -n 's/^VMTEST clocksource //p' "$log")
slow=$(sed -n 's/^VMTEST slowdown //p' "$log")
echo
echo "kernel $label, $accel, clocksource ${cs:-?}, a shell loop ${slow:-?} times slower than here, ${elapsed} s; full log: ${log#"$repo"/}"
echo
echo "doctor:"
sed -n '/^VMTEST doctor-begin/,/^VMTEST doctor-end/p' "$log" | grep -v '^VMTEST' | sed 's/^/  /'
echo
awk -v kernel="$label" '
function flush() {
	if (step == "") return
	printf "%-12s %-26s %6d %6d  %s\n", kernel, step, pass[step], fail[step], checks[step]
}
/^VMTEST suite-begin / { suite = $3; out = ""; tests = -1; next }
/[0-9]+%: Checks: / { t = $0; sub(/.*%: Checks: /, "", t); tests = t + 0 }
/:[FE]:/ && suite != "" { line = $0; sub(/^[^:]*:[0-9]+:[FE]:/, "", line); split(line, f, ":"); out = out (out == "" ? "" : ", ") f[2] }
/^VMTEST suite-end / {
	s = $3; rc = $4; st = s; sub(/\/.*/, "", st)
	if (st != step) { flush(); step = st; order[++n] = st }
	if (tests == 0 && rc != 0 && s ~ /\/keepalive$/) { suite = ""; next }	# no such suite for this step
	if (rc == 0) pass[st]++
	else {
		fail[st]++
		failed_any = 1
		k = s; sub(/^[^\/]*/, "", k); k = (k == "" ? "main" : substr(k, 2))
		checks[st] = checks[st] (checks[st] == "" ? "" : "; ") k ": " (out == "" ? "exit " rc : out)
	}
	suite = ""
}
BEGIN { printf "%-12s %-26s %6s %6s  %s\n", "kernel", "step", "passed", "failed", "failing checks" }
END { flush(); exit failed_any }
' "$log" || status=1
grep -q '^VMTEST done' "$log" || status=1
exit $status
