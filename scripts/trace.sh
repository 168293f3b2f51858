#!/usr/bin/env bash
# trace.sh - one request's journey through the kernel, from io_uring's own
# tracepoints:   make trace STEP=NN [TARGET=/path] [ARGS="server options"]
#
#   scripts/trace.sh [-t TARGET] [-a "SERVER ARGS"] [-o OUTDIR] STEP
#
# STEP is NN, or "epilogue" for epilogue_defer_taskrun (its files are
# OUTDIR/epilogue.txt and .svg).
#
# Exit status: 0, 1 on a failure, 2 on bad usage, 77 when this machine
# cannot trace (not root, no tracefs, no io_uring tracepoints), saying why.
#
# Starts the step's server on a free port, records the kernel's io_uring
# tracepoints (events/io_uring/*) and the server's syscalls (raw_syscalls,
# filtered to the server's threads: the main thread, its SQ thread
# iou-sqp-PID, io-wq workers iou-wrk-TID) while scripts/trace_client.c
# sends one request (two on one connection where the server keeps it
# alive: steps 06 and 07), stops the server with SIGINT, and prints the
# timeline decoded with the step's own vocabulary (its `enum op`, read from
# server.c now, and its user_data layout: bits 31..8 connection slot, bits
# 7..0 op), `summary:` lines, and last the path of an SVG of the timeline
# (OUTDIR/stepNN.svg, next to OUTDIR/stepNN.txt, default OUTDIR trace/out).
#
# How: tracefs directly, from this script, in a tracing instance of its own
# (instances/io_uring_steps.PID): its own ring buffer, clock, filters and
# event switches, so the global tracing state is never touched, and
# removing the instance restores everything (on any exit, Ctrl-C
# included). Why not trace-cmd or perf: they would be one more package to
# install for what is a few writes into tracefs; the decoding and the SVG
# are one awk program (scripts/trace_decode.awk), the client a small C
# program compiled on the spot. Needs root, bash, awk, a C compiler.
#
# Events of our ring that run in interrupt context (a wake-up from the
# network's softirq) belong to whichever task the interrupt hit: they are
# kept by the filter (common_flags: hardirq/softirq) and afterwards by
# their ring, which must be one our server's threads used.
set -u
cd "$(dirname "$0")/.." || exit 1

usage() {
	echo "usage: $0 [-t TARGET] [-a \"SERVER ARGS\"] [-o OUTDIR] STEP   (e.g. $0 -t /large 07)" >&2
	exit 2
}

target=/
server_args=
outdir=trace/out
while getopts "t:a:o:h" opt; do
	case $opt in
	t) target=$OPTARG ;;
	a) server_args=$OPTARG ;;
	o) outdir=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || usage
step=$1
case $step in [0-9][0-9]) ;; [0-9]) step=0$step ;; epilogue) ;; *) usage ;; esac
name=step$step
dir=$(ls -d step${step}_* 2>/dev/null | head -n 1)
if [ "$step" = epilogue ]; then
	name=epilogue
	dir=$(ls -d epilogue_* 2>/dev/null | head -n 1)
fi
[ -n "$dir" ] || { echo "no step $step: try one of $(ls -d step[0-9][0-9]_* | tr '\n' ' ')epilogue" >&2; exit 2; }
case $target in /*) ;; *) echo "TARGET must start with /: $target" >&2; exit 2 ;; esac

if [ "$(id -u)" != 0 ]; then
	cmd="sudo make trace STEP=$step"
	[ "$target" != / ] && cmd="$cmd TARGET=$target"
	[ -n "$server_args" ] && cmd="$cmd ARGS=\"$server_args\""
	echo "make trace reads the kernel's tracepoints (tracefs), which needs root:" >&2
	echo "    $cmd" >&2
	exit 77
fi

# ---- tracefs: find it, or mount it (and unmount it again at the end) ----
# Where it is mounted already (not by looking into /sys/kernel/debug/tracing,
# which would mount it there), else mount it ourselves.
tracefs=$(awk '$3 == "tracefs" { if (!t || $2 == "/sys/kernel/tracing") t = $2 } END { print t }' /proc/mounts)
mounted=
if [ -z "$tracefs" ]; then
	if ! grep -qw tracefs /proc/filesystems; then
		echo "this kernel has no tracefs (CONFIG_FTRACE is off): nothing to trace" >&2
		exit 77
	fi
	mount -t tracefs nodev /sys/kernel/tracing || {
		echo "could not mount tracefs: mount -t tracefs nodev /sys/kernel/tracing" >&2
		exit 77
	}
	tracefs=/sys/kernel/tracing
	mounted=1
fi
if [ ! -d "$tracefs/events/io_uring" ] || [ ! -d "$tracefs/instances" ]; then
	if [ ! -d "$tracefs/instances" ]; then
		echo "this kernel's tracefs has no instances (before Linux 3.16): not supported" >&2
	else
		echo "this kernel has no io_uring tracepoints ($tracefs/events/io_uring is missing:" >&2
		echo "it needs CONFIG_IO_URING and CONFIG_EVENT_TRACING): nothing to trace" >&2
	fi
	[ -n "$mounted" ] && umount "$tracefs"
	exit 77
fi
have_syscalls=
[ -d "$tracefs/events/raw_syscalls" ] && have_syscalls=1

# ---- cleanup, whatever happens from here on ----
inst=
spid=
work=$(mktemp -d)
cleanup() {
	if [ -n "$inst" ] && [ -d "$inst" ]; then
		echo 0 >"$inst/tracing_on" 2>/dev/null
		echo 0 >"$inst/events/enable" 2>/dev/null
		echo 0 >"$inst/events/io_uring/filter" 2>/dev/null
		[ -n "$have_syscalls" ] && echo 0 >"$inst/events/raw_syscalls/filter" 2>/dev/null
		rmdir "$inst" 2>/dev/null || echo "trace: could not remove $inst" >&2
	fi
	inst=
	if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
		kill -INT "$spid" 2>/dev/null
		for _ in $(seq 40); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
	fi
	spid=
	if [ -n "$mounted" ]; then
		umount "$tracefs" 2>/dev/null
		mounted=
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "trace: interrupted" >&2; exit 130' INT TERM HUP

# An instance left behind by a run that was killed (kill -9): remove it.
for old in "$tracefs"/instances/io_uring_steps.*; do
	[ -d "$old" ] || continue
	kill -0 "${old##*.}" 2>/dev/null && continue
	echo 0 >"$old/tracing_on"; echo 0 >"$old/events/enable"
	rmdir "$old" 2>/dev/null
done

# ---- build the server and the client ----
make --no-print-directory -s -C "$dir" >"$work/build.log" 2>&1 || {
	cat "$work/build.log" >&2; echo "trace: building $dir failed" >&2; exit 1
}
cc -O2 -o "$work/trace_client" scripts/trace_client.c || exit 1

# Syscall names: the compiler's own table for this machine (linux-libc-dev).
echo '#include <sys/syscall.h>' | cc -dM -E - 2>/dev/null |
	awk '$1 == "#define" && $2 ~ /^__NR_/ && $3 ~ /^[0-9]+$/ { print $3, substr($2, 6) }' >"$work/syscalls"
if [ ! -s "$work/syscalls" ] && [ "$(uname -m)" = x86_64 ]; then
	# no kernel headers: the ones that matter here, for x86_64
	printf '%s\n' "0 read" "1 write" "3 close" "7 poll" "35 nanosleep" "43 accept" \
		"44 sendto" "45 recvfrom" "46 sendmsg" "47 recvmsg" "48 shutdown" \
		"54 setsockopt" "202 futex" "230 clock_nanosleep" "232 epoll_wait" \
		"271 ppoll" "281 epoll_pwait" "288 accept4" "425 io_uring_setup" \
		"426 io_uring_enter" "427 io_uring_register" >"$work/syscalls"
fi

# ---- start the server ----
# If this script is killed outright (kill -9), the kernel stops the server
# (setpriv --pdeathsig), and the next run removes the tracing instance.
pdeath=
setpriv --pdeathsig INT true 2>/dev/null && pdeath="setpriv --pdeathsig INT"
# shellcheck disable=SC2086 # ARGS is a list of options
$pdeath "$dir/server" -p 0 $server_args >"$work/server.out" 2>&1 &
spid=$!
for _ in $(seq 100); do
	grep -q '^listening on ' "$work/server.out" && break
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.05
done
listen=$(sed -n 's/^listening on //p' "$work/server.out" | head -n 1)
if [ -z "$listen" ]; then
	echo "trace: $dir/server -p 0 $server_args did not start:" >&2
	cat "$work/server.out" >&2
	exit 1
fi
addr=${listen%:*}
port=${listen##*:}

# ---- the tracing instance ----
inst=$tracefs/instances/io_uring_steps.$$
mkdir "$inst" || { inst=; echo "trace: cannot create a tracing instance" >&2; exit 1; }
echo 0 >"$inst/tracing_on"
echo mono >"$inst/trace_clock"		# one clock for every CPU
echo 4096 >"$inst/buffer_size_kb"	# per CPU; the instance's own buffer
# The server's threads now (main, SQ thread), io-wq workers whenever they
# come (named after the thread whose work they do), and interrupt context.
tids=$(ls "/proc/$spid/task")
pids=
for t in $tids; do
	pids="$pids${pids:+ || }common_pid == $t || comm == \"iou-wrk-$t\""
done
pids="$pids || comm == \"iou-sqp-$spid\""
echo "$pids || comm == \"trace_client\" || common_flags & 0x18" >"$inst/events/io_uring/filter" || exit 1
# A spinning SQ thread runs its (empty) task work list a few times a
# microsecond: keep only the runs that found work.
for e in io_uring_task_work_run io_uring_local_work_run; do
	[ -d "$inst/events/io_uring/$e" ] &&
		echo "($pids) && count > 0" >"$inst/events/io_uring/$e/filter"
done
echo 1 >"$inst/events/io_uring/enable"
if [ -n "$have_syscalls" ]; then
	echo "$pids" >"$inst/events/raw_syscalls/filter" || exit 1
	echo 1 >"$inst/events/raw_syscalls/sys_enter/enable"
	echo 1 >"$inst/events/raw_syscalls/sys_exit/enable"
fi
echo 1 >"$inst/tracing_on"

"$work/trace_client" "$addr" "$port" "$target" "$inst/trace_marker" >"$work/client.out"
client_rc=$?

echo 0 >"$inst/tracing_on"
cat "$inst/trace" >"$work/raw"
lost=$(cat "$inst"/per_cpu/cpu*/stats 2>/dev/null | awk '/^(overrun|dropped events):/ { n += $NF } END { print n + 0 }')
server_pid=$spid
# Tracing off and the instance gone before the server stops.
echo 0 >"$inst/events/enable"
rmdir "$inst" 2>/dev/null
inst=
kill -INT "$spid" 2>/dev/null
for _ in $(seq 40); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$spid" 2>/dev/null && { kill -KILL "$spid"; echo "trace: the server did not stop on SIGINT" >&2; }
wait "$spid" 2>/dev/null
spid=

if [ "$client_rc" != 0 ]; then
	echo "trace: the request failed; the server said:" >&2
	cat "$work/server.out" >&2
	exit 1
fi

# ---- decode ----
mkdir -p "$outdir" || exit 1
svg=$outdir/$name.svg
txt=$outdir/$name.txt
title="$dir: GET $target${server_args:+ (server $server_args)}"
awk -f scripts/trace_decode.awk \
	-v step="$step" -v title="$title" -v spid="$server_pid" \
	-v requests="$(sed -n 's/^requests=\([0-9]*\).*/\1/p' "$work/client.out")" \
	-v lost="$lost" -v svg="$svg" -v have_syscalls="$have_syscalls" \
	"$dir/server.c" "$work/syscalls" "$work/raw" "$work/raw" >"$work/out" || exit 1
{
	echo "# make trace STEP=$step$([ "$target" != / ] && echo " TARGET=$target")${server_args:+ ARGS=\"$server_args\"}"
	cat "$work/out"
} >"$txt"
cat "$txt"
echo "$svg"
