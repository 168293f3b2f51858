#!/usr/bin/env bash
# check_doctor.sh - `make doctor` agrees with the servers, run by `make test`.
#
# Runs scripts/doctor; for each step it calls ready, starts that step's
# server with -p 0, waits for its "listening on ADDR:PORT" line and stops
# it with SIGINT (it must exit 0); for each step it calls not ready, the
# server must exit 1 and say why on stderr. The doctor must give exactly one
# verdict per step directory and exit 0 only when all are ready.
#
# Three rounds, each doctor and servers under the same conditions:
#   as is          whatever this machine and user allow;
#   ulimit -n 512  fewer open files than step 06's default -c: the doctor
#                  must call steps 06-07 and the epilogue not ready, and
#                  they must refuse;
#   as nobody      when run as root: the unprivileged path (no CAP_IPC_LOCK,
#                  SQPOLL as a user, the user's own limits). It runs copies
#                  of the doctor and the servers, in a directory of its own
#                  in $TMPDIR or /tmp: the tree itself may be where nobody
#                  cannot reach it (a clone in /root, in a mktemp -d), and
#                  its permissions are not ours to change. Skipped, saying
#                  why, where no directory there is within nobody's reach.
#
# Then, as root, this whole check once more from a copy of the repository
# in a 0700 directory, where its "as nobody" round must still run and pass.
#
# Ends with "doctor checks: N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
root=$PWD

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

work=$(mktemp -d) || exit 1
scratch=()	# more directories to remove on exit
trap 'rm -rf "$work" "${scratch[@]}"' EXIT

if ! make -s --no-print-directory scripts/doctor; then
	fail "scripts/doctor does not build"
	echo "doctor checks: $passed passed, $failed failed"
	exit 1
fi

steps="$(ls -d step[0-9][0-9]_* | tr '\n' ' ')$(ls -d epilogue_* | tr '\n' ' ')"
as=()		# prefix that runs a command as another user
limits=":"	# shell commands run before the doctor and each server

# run CMD...: CMD under the round's user and limits, as a child of this shell.
run() {
	"${as[@]}" bash -c "$limits"' || exit 99; exec "$@"' bash "$@"
}

# start_server STEP: "ready" must mean that it starts and stops cleanly.
start_server() {
	local step=$1 pid i status out=$work/$1.out err=$work/$1.err pidfile=$work/$1.pid

	# Nothing left from an earlier round: the server may not have started
	# (nor truncated them) by the first look.
	rm -f "$out" "$err" "$pidfile"
	# bash writes its pid, then becomes the server: the pid to signal even
	# when runuser stands between us and it.
	"${as[@]}" bash -c "$limits"' || exit 99; echo $$ >"$0"; exec "$@"' \
		"$pidfile" "./$step/server" -p 0 >"$out" 2>"$err" &
	pid=$!
	for i in $(seq 50); do
		grep -qsE '^listening on [0-9.]+:[0-9]+$' "$out" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -qsE '^listening on [0-9.]+:[0-9]+$' "$out" || [ ! -s "$pidfile" ]; then
		[ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null
		wait "$pid"
		fail "$step: the doctor says ready, but the server did not start ($(head -c 300 "$err" | tr '\n' ' '))"
		return
	fi
	kill -INT "$(cat "$pidfile")"
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$(cat "$pidfile")" 2>/dev/null
		wait "$pid"
		fail "$step: did not stop within 5 s of SIGINT"
		return
	fi
	wait "$pid"
	status=$?
	if [ "$status" = 0 ]; then
		pass
	else
		fail "$step: exit status $status after SIGINT ($(head -c 300 "$err" | tr '\n' ' '))"
	fi
}

# refuse_server STEP: "will not run" must mean exit 1 with a message.
refuse_server() {
	local step=$1 status err=$work/$1.err

	run timeout -s INT 10 "./$step/server" -p 0 >"$work/$step.out" 2>"$err"
	status=$?
	if [ "$status" = 1 ] && [ -s "$err" ]; then
		pass
	elif grep -q '^listening on ' "$work/$step.out"; then
		fail "$step: the doctor says it will not run, but it started"
	else
		fail "$step: the doctor says it will not run; the server exited $status$([ -s "$err" ] || echo ', silently')"
	fi
}

# round NAME [STEP...]: run the doctor, then every server against its
# verdicts; the STEPs named must be called not ready in this round.
round() {
	local name=$1 line step verdict status seen="" ready=0 total=0
	shift

	run scripts/doctor >"$work/doctor" 2>"$work/doctor.err"
	status=$?
	echo "doctor ($name): exit $status; $(grep -c ': ready' "$work/doctor") ready"
	while IFS= read -r line; do
		step=${line%%: *}
		verdict=${line#*: }
		total=$((total + 1))
		seen="$seen$step "
		if [ ! -x "$step/server" ]; then
			fail "$name: a verdict for $step, which has no server"
			continue
		fi
		case "$verdict" in
		ready | "ready ("*")")
			ready=$((ready + 1))
			case " $* " in
			*" $step "*) fail "$name: $step should not be ready here: $verdict" ;;
			esac
			start_server "$step"
			;;
		"will not run: "*". Fix: "?*)
			refuse_server "$step"
			;;
		*)
			fail "$name: $step: not a verdict: $verdict"
			;;
		esac
	done < <(grep -E '^(step[0-9][0-9]|epilogue)_[a-z0-9_]*: ' "$work/doctor")
	if [ "$seen" = "$steps" ]; then
		pass
	else
		fail "$name: verdicts for [${seen% }], steps are [${steps% }]"
	fi
	if { [ "$ready" = "$total" ] && [ "$status" = 0 ]; } ||
	   { [ "$ready" != "$total" ] && [ "$status" = 1 ]; }; then
		pass
	else
		fail "$name: $ready of $total steps ready, and the doctor exited $status"
	fi
	if [ "$(tail -n 1 "$work/doctor")" = "doctor: all $total steps ready" ] ||
	   tail -n 1 "$work/doctor" | grep -qE "^doctor: $ready of $total steps ready"; then
		pass
	else
		fail "$name: the last line is not the overall verdict: $(tail -n 1 "$work/doctor")"
	fi
	if [ -s "$work/doctor.err" ]; then
		fail "$name: the doctor wrote to stderr: $(head -c 300 "$work/doctor.err")"
	fi
}

round "as is"

limits="ulimit -n 512"
round "ulimit -n 512" step06_multishot_bufring step07_send_zc epilogue_defer_taskrun
limits=":"

# nobody_tree: a new directory that nobody can reach, holding copies of
# the doctor and of every step's server (DIR/scripts/doctor, DIR/STEP/server)
# where the round also keeps its output and pid files; its path on stdout.
# The copies' modes are set here, not inherited: root's umask may be 077.
nobody_tree() {
	local base prev= dir step ok
	for base in "${TMPDIR:-/tmp}" /tmp; do
		[ "$base" = "$prev" ] && continue
		prev=$base
		dir=$(mktemp -d -p "$base" check_doctor.XXXXXX 2>/dev/null) || continue
		# The servers write their pid here, as nobody.
		chmod 0777 "$dir" && mkdir -m 0755 "$dir/scripts" &&
			install -m 0755 scripts/doctor "$dir/scripts/doctor"
		ok=$?
		for step in $steps; do
			[ "$ok" = 0 ] || break
			mkdir -m 0755 "$dir/$step" &&
				install -m 0755 "$step/server" "$dir/$step/server"
			ok=$?
		done
		if [ "$ok" = 0 ] &&
		   runuser -u nobody -- test -x "$dir/scripts/doctor" -a -w "$dir"; then
			echo "$dir"
			return 0
		fi
		rm -rf "$dir"
	done
	return 1
}

nobody_ran=
if [ "$(id -u)" != 0 ]; then
	echo "doctor (as nobody): skipped, switching to nobody needs root"
elif ! command -v runuser >/dev/null 2>&1 || ! id nobody >/dev/null 2>&1; then
	echo "doctor (as nobody): skipped, needs runuser (util-linux) and a user nobody"
elif ! nobody_dir=$(nobody_tree); then
	echo "doctor (as nobody): skipped, no directory that nobody can reach in ${TMPDIR:+$TMPDIR or }/tmp"
else
	scratch+=("$nobody_dir")
	tree_work=$work
	work=$nobody_dir
	cd "$nobody_dir" || exit 1
	as=(runuser -u nobody --)
	round "as nobody"
	as=()
	cd "$root" || exit 1
	work=$tree_work
	nobody_ran=1
fi

# The repository where nobody can reach it: copied with what make test
# built, but without .git, into a 0700 directory under a name with a space,
# and this check run there (not again from that copy). Its "as nobody" round
# must run wherever ours did.
if [ -n "${CHECK_DOCTOR_COPY:-}" ]; then
	:
elif [ "$(id -u)" != 0 ]; then
	echo "doctor (0700 copy): skipped, only root's round switches user"
elif ! copy_dir=$(mktemp -d) || ! chmod 0700 "$copy_dir"; then
	fail "0700 copy: no scratch directory (mktemp -d)"
else
	scratch+=("$copy_dir")
	copy="$copy_dir/a clone"
	mkdir "$copy" && tar -c --exclude=./.git . | tar -x -C "$copy" &&
		CHECK_DOCTOR_COPY=1 "$copy/tests/check_doctor.sh" >"$work/copy.out" 2>&1
	status=$?
	echo "doctor (0700 copy): exit $status; $(tail -n 1 "$work/copy.out")"
	if [ "$status" = 0 ] &&
	   { [ -z "$nobody_ran" ] || grep -q '^doctor (as nobody): exit' "$work/copy.out"; }; then
		pass
	else
		fail "0700 copy: tests/check_doctor.sh does not pass from a copy in a 0700 directory ($copy):"
		grep -E '^(FAIL|doctor \(as nobody\))' "$work/copy.out" | head -10 | sed 's/^/      /'
	fi
fi

echo "doctor checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
