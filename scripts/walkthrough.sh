#!/usr/bin/env bash
# walkthrough.sh - make walkthrough: run the commands TUTORIAL.md tells a
# reader to run, in a scratch clone, in order, and check that each shows
# what the text says it shows.
#
# A command block the tooling runs is the indented block right after a
# marker line:
#
#   <!-- walk ID [server="NN ARGS"] expect="REGEX" ... [root] [fast] -->
#
#   server="NN ARGS"  start step NN's server (with ARGS) before the block,
#                     as the reader does in the other terminal, and stop it
#                     with SIGINT after (its output, the exit counters, is
#                     checked with the block's);
#   expect="REGEX"    an extended regex the output must match somewhere
#                     (stdout and stderr of the block and of its server);
#                     several may be given, each must match;
#   root              needs root (tracing): skipped, saying so, otherwise;
#   fast              part of the fast subset that make test runs
#                     (WALK_FAST=1): a few seconds each.
#
# The block runs as written, with these changes so that it runs unattended
# on a shared machine: port 8000 becomes a free port of its own; a line
# that starts a server in the foreground ("# left", or a server command
# without &) starts it in the background instead; `top` runs in batch mode
# for 3 one-second samples; `less` becomes `cat`; the reader's own newest
# server, `pgrep -nx -u "$(id -u)" server`, is this block's own. Every
# block runs in a session of its own, under a time limit (WALK_TIMEOUT, 60
# s), and whatever it leaves running is stopped by its process id.
#
# Prints one line per block, "ok ID" or "FAIL ID: what differed" or
# "skip ID: why", and ends with "walkthrough: N ok, N failed, N skipped".
#
#   scripts/walkthrough.sh            every block (a few minutes)
#   WALK_FAST=1 scripts/walkthrough.sh    the fast subset
#   WALK_ONLY="ID ID" scripts/walkthrough.sh  only these blocks
#   WALK_IN_PLACE=1 ...               in this tree instead of a clone
set -u
cd "$(dirname "$0")/.." || exit 1
root=$PWD
timeout_s=${WALK_TIMEOUT:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A scratch clone, as a reader has it: git clone, or a copy without .git.
if [ -n "${WALK_IN_PLACE:-}" ]; then
	tree=$root
else
	tree=$work/tree
	# (another user's checkout: git refuses it, so copy the files instead)
	if git -C "$root" rev-parse --show-toplevel >/dev/null 2>&1 &&
		git clone -q "$root" "$tree" 2>/dev/null; then
		# uncommitted edits of the text and scripts are what is walked
		(cd "$root" && git diff HEAD) | (cd "$tree" && git apply 2>/dev/null || true)
	else
		rm -rf "$tree"
		mkdir -p "$tree" && (cd "$root" && tar cf - --exclude=.git .) | (cd "$tree" && tar xf -) || exit 1
		make -s --no-print-directory -C "$tree" clean >/dev/null 2>&1
	fi
	chmod -R a+rX "$work"
	make -s --no-print-directory -C "$tree" all >"$work/build.log" 2>&1 ||
		{ echo "FAIL build: make all in the scratch clone:"; tail -5 "$work/build.log"; exit 1; }
fi

tut=$tree/TUTORIAL.md	# the clone's: edits made meanwhile do not shift it

free_port() {	# a port nobody listens on
	local p
	for p in $(seq $((20000 + $$ % 5000)) 29999); do
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
	echo 28999
}

# rewrite: the block as it runs unattended (see the header)
rewrite() {	# rewrite PORT < block > script
	sed -E \
		-e 's/^    //' \
		-e "s/127\\.0\\.0\\.1([:\\/])8000/127.0.0.1\\1$1/g" \
		-e 's/\$\(pgrep -nx -u "\$\(id -u\)" server\)/$(pgrep -nx -s 0 server)/g' \
		-e 's/(^|[;&|] *)top -H /\1top -b -n 3 -H /' \
		-e 's/^less /cat /' \
		-e "s/^make run STEP=([0-9]+)( |$)(.*)/make run STEP=\\1 PORT=$1 >>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& sleep 2 \\3/" \
		-e "s#^(\\./step[0-9]+_[a-z_]+/server)( [^&\#]*)? *& *([^\# ].*)\$#\\1 -p $1\\2 >>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& sleep 0.5; \\3#" \
		-e "s#^(\\./step[0-9]+_[a-z_]+/server)( [^&\#]*)?(&?)( *\#.*)?\$#\\1 -p $1\\2 >>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& sleep 0.5 \\4#"
}

run_block() {	# run_block: runs $work/block once, sets miss (empty: ok)
	port=$(free_port)
	server=$(echo "$marker" | sed -n 's/.* server="\([^"]*\)".*/\1/p')
	{
		echo 'cd "$WALK_TREE" || exit 1'
		if [ -n "$server" ]; then
			set -- $server
			dir=$(cd "$tree" && ls -d step"$1"_* | head -1)
			shift
			echo "./$dir/server -p $port $* >>\"\$WALK_SERVER_LOG\" 2>&1 & sleep 0.5"
		fi
		rewrite "$port" <"$work/block"
		echo "sleep 1"	# strace and the servers print their tables
	} >"$work/script"
	: >"$work/server.log"
	# setsid in a background job: no fork, so the session's id is $!
	WALK_TREE=$tree WALK_SERVER_LOG=$work/server.log \
		setsid timeout -k 5 "$timeout_s" bash "$work/script" >"$work/out" 2>&1 </dev/null &
	runner=$!
	wait "$runner"
	rc=$?
	# stop what the block left running: its session's processes, by id,
	# servers first with SIGINT so that they print their exit counters
	for p in $(pgrep -x server 2>/dev/null); do
		[ "$(ps -o sid= -p "$p" 2>/dev/null | tr -d ' ')" = "$runner" ] && kill -INT "$p" 2>/dev/null
	done
	sleep 0.5
	for p in $(pgrep -s "$runner" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	cat "$work/server.log" >>"$work/out"
	miss=""
	while IFS= read -r re; do
		[ -n "$re" ] || continue
		grep -Eq -- "$re" "$work/out" || miss="$miss${miss:+; }no match for /$re/"
	done < <(echo "$marker" | grep -o ' expect="[^"]*"' | sed 's/^ expect="//; s/"$//')
	[ "$rc" = 124 ] && miss="$miss${miss:+; }timed out after ${timeout_s} s"
}

ok=0 failed=0 skipped=0
grep -n '^<!-- walk [A-Za-z0-9._-]* .*-->$' "$tut" >"$work/markers"
while IFS= read -r m; do
	line=${m%%:*}
	marker=${m#*:}
	id=$(echo "$marker" | awk '{ print $3 }')
	if [ -n "${WALK_ONLY:-}" ] && ! echo " $WALK_ONLY " | grep -q " $id "; then continue; fi
	if [ -n "${WALK_FAST:-}" ] && ! echo "$marker" | grep -q ' fast '; then continue; fi
	if echo "$marker" | grep -q ' root ' && [ "$(id -u)" != 0 ]; then
		skipped=$((skipped + 1)); echo "skip $id: needs root (as the text says: sudo)"; continue
	fi
	awk -v from="$line" 'NR <= from { next } /^    / || (/^$/ && on) { on = 1; print; next } { exit }' "$tut" |
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$work/block"
	if [ ! -s "$work/block" ]; then
		failed=$((failed + 1)); echo "FAIL $id: TUTORIAL.md:$line: no indented block after the marker"; continue
	fi
	# The load tools come with `make deps`, not with make test's packages:
	# a block that needs one that is missing is skipped, saying which.
	lack=""
	for tool in ab wrk curl h2load nc top strace; do
		grep -Eq "(^|[^A-Za-z0-9_./-])$tool( |$)" "$work/block" || continue
		command -v "$tool" >/dev/null 2>&1 || lack="$lack $tool"
	done
	if [ -n "$lack" ]; then
		skipped=$((skipped + 1))
		echo "skip $id: needs$lack (make deps installs the load tools, as root)"
		continue
	fi
	t0=$(date +%s)
	run_block
	# once more before it counts: on two busy shared cores a short load
	# or an attach can lose its turn (check_trace.sh does the same)
	retried=""
	[ -n "$miss" ] && { run_block; retried=", on a second try"; }
	if [ -z "$miss" ]; then
		ok=$((ok + 1)); echo "ok   $id ($(( $(date +%s) - t0 )) s$retried)"
	else
		failed=$((failed + 1)); echo "FAIL $id (TUTORIAL.md:$line): $miss"
		sed 's/^/      | /' "$work/out" | tail -8
	fi
done <"$work/markers"
echo "walkthrough: $ok ok, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
