#!/usr/bin/env bash
# check_trace.sh - run by `make test`: traces each step once with
# scripts/trace.sh (the kernel's io_uring tracepoints and the server's
# syscalls) and checks, from the kernel's side, what each chapter claims:
#
#   01  accept, recv, send and close syscalls; no io_uring at all
#   03  SEND and CLOSE linked, and submitted in one io_uring_enter
#   04  every submission made by the SQ thread; no io_uring_enter of the
#       app submits anything
#   05  (-s 100000, a spin budget that outlasts the request) no syscall
#   06  the second request on the kept-alive connection: no new RECV or
#       ACCEPT submission; the multishot recv delivers it, with F_MORE
#   07  (/large) a SEND_ZC completion with F_MORE, then its NOTIF
#   epilogue  no SQ thread; the completions' task work runs in the app,
#       inside an io_uring_enter that waits (DEFER_TASKRUN); two requests
#   all a summary line and an SVG
#
# Prints one line per check and ends with "trace checks: N passed, N
# failed". Tracing needs root and tracefs: otherwise it says why it skips
# and ends with "trace checks: 0 passed, 0 failed". A step whose checks
# fail is traced once more before they count as failed: on two busy cores a
# spinning thread can lose its core for longer than the request lasts.
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/trace_plan.sh

passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check NAME CONDITION-EXIT-STATUS: records one result for the current try
results=
check() {
	if [ "$2" = 0 ]; then
		results="$results${results:+
}ok   $1"
	else
		results="$results${results:+
}FAIL $1"
	fi
}

# the value of KEY in the summary line that starts with PREFIX
val() {
	grep "^summary: $2 " "$1" | head -n 1 | tr ' ' '\n' | sed -n "s/^$3=//p"
}

# the timeline of request N (its lines between its header and the next)
section() {
	awk -v n="$2" '/^── request / { on = ($3 == n ":") ; next } /^$/ { on = 0 } on' "$1"
}

checks_for() {	# STEP OUTPUT
	local s=$1 out=$2 f
	results=
	f=$(tail -n 1 "$out")
	case $f in *.svg) [ -s "$f" ] && grep -q '</svg>' "$f"; check "step $s: ends with the SVG it wrote ($f)" $? ;;
	*) check "step $s: ends with the SVG it wrote" 1 ;; esac
	grep -q '^summary: requests=[0-9]* syscalls=[0-9]* sqes=[0-9]* cqes=[0-9]* poll_arms=[0-9]* io_wq=[0-9]* links=[0-9]*' "$out"
	check "step $s: summary line" $?
	case $s in
	01)
		calls=$(val "$out" requests=1 calls)
		ok=0
		for c in accept recv send close; do
			echo ",$calls" | grep -Eq ",${c}[a-z0-9]*:" || ok=1
		done
		check "step 01: accept, recv, send, close syscalls ($calls)" $ok
		[ "$(val "$out" requests=1 sqes)" = 0 ] && [ "$(val "$out" requests=1 cqes)" = 0 ] &&
			[ "$(val "$out" requests=1 enters)" = 0 ] && ! grep -q 'syscall io_uring_' "$out"
		check "step 01: no io_uring at all" $?
		;;
	03)
		echo ",$(val "$out" requests=1 batches)" | grep -q ',SEND+CLOSE:'
		check "step 03: SEND and CLOSE submitted in one io_uring_enter ($(val "$out" requests=1 batches))" $?
		grep -q 'SEND (conn [0-9]*) → CLOSE (conn [0-9]*) linked' "$out"
		check "step 03: SEND → CLOSE linked (io_uring_link)" $?
		;;
	04)
		[ "$(val "$out" requests=1 sqt_sqes)" -gt 0 ] && [ "$(val "$out" requests=1 app_sqes)" = 0 ]
		check "step 04: every submission by the SQ thread (sqt_sqes=$(val "$out" requests=1 sqt_sqes) app_sqes=$(val "$out" requests=1 app_sqes))" $?
		[ "$(val "$out" requests=1 submit_enters)" = 0 ]
		check "step 04: no io_uring_enter of the app submits (submit_enters=$(val "$out" requests=1 submit_enters))" $?
		;;
	05)
		[ "$(val "$out" requests=1 syscalls)" = 0 ] && [ "$(val "$out" requests=1 cqes)" -gt 0 ]
		check "step 05 -s 100000: the request costs no syscall (syscalls=$(val "$out" requests=1 syscalls), cqes=$(val "$out" requests=1 cqes))" $?
		;;
	06 | 07 | epilogue)
		[ "$(val "$out" requests=2 syscalls)" != "" ]
		check "step $s: two requests on one connection" $?
		;;
	esac
	case $s in
	06)
		[ "$(val "$out" request=2 recv_sqes)" = 0 ] && [ "$(val "$out" request=2 accept_sqes)" = 0 ] &&
			[ "$(val "$out" request=1 accept_sqes)" = 0 ]
		check "step 06: no RECV submitted for request 2, no ACCEPT re-armed" $?
		section "$out" 2 | grep -q 'RECV (conn [0-9]*) completed.*flags=MORE'
		check "step 06: the multishot RECV delivers request 2, with F_MORE" $?
		;;
	07)
		awk '/SEND_ZC .*completed.*flags=MORE/ && !m { m = NR } /SEND_ZC .*NOTIF/ && m && NR > m { n = 1 } END { exit !n }' "$out"
		check "step 07: SEND_ZC completes with F_MORE, then its NOTIF" $?
		;;
	epilogue)
		! grep -q '  SQ thread  ' "$out" && [ "$(val "$out" requests=2 sqt_sqes)" = 0 ]
		check "epilogue: no SQ thread" $?
		# each request's task work: in the app, before one of its
		# io_uring_enter calls returns (the call may have begun before
		# the request did: it was waiting), not between two calls
		for r in 1 2; do
			section "$out" $r | awk '
				/ app  *task work runs/ { pending = 1 }
				/ app  *syscall io_uring_enter\(/ { pending = 0 }
				/ app  *syscall io_uring_enter returns/ { if (pending) ok = 1; pending = 0 }
				END { exit !ok }'
			check "epilogue: request $r: task work runs in the app, inside its io_uring_enter" $?
		done
		;;
	esac
}

run_step() {	# STEP TARGET ARGS
	local s=$1 try rc
	for try in 1 2; do
		scripts/trace.sh -o "$work" -t "$2" -a "$3" "$s" >"$work/out$s" 2>"$work/err$s"
		rc=$?
		if [ "$rc" = 77 ]; then
			echo "skipped: $(head -n 1 "$work/err$s") $(sed -n 2p "$work/err$s" | sed 's/^ *//')"
			return 77
		fi
		if [ "$rc" != 0 ]; then
			results="FAIL step $s: make trace STEP=$s failed: $(tail -n 3 "$work/err$s" | tr '\n' ' ')"
		else
			checks_for "$s" "$work/out$s"
		fi
		echo "$results" | grep -q '^FAIL' || break
		[ "$try" = 1 ] && echo "step $s: traced again, a check failed: $(echo "$results" | grep '^FAIL' | head -n 1)"
	done
	echo "$results"
	passed=$((passed + $(echo "$results" | grep -c '^ok')))
	failed=$((failed + $(echo "$results" | grep -c '^FAIL')))
	return 0
}

if [ "$(id -u)" != 0 ]; then
	echo "skipped: tracing the kernel (tracefs) needs root: sudo make test"
	echo "trace checks: 0 passed, 0 failed"
	exit 0
fi

for dir in step[0-9][0-9]_* epilogue_*; do
	n=${dir#step}
	n=${n%%_*}
	trace_plan "$n"
	run_step "$n" "$target" "$args" || break
done

echo "trace checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
