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
#   server="NN ARGS"  start step NN's server (NN may be "epilogue") with
#                     ARGS before the block, as the reader does in the
#                     other terminal, and stop it with SIGINT after (its
#                     output, the exit counters, is checked with the
#                     block's);
#   expect="REGEX"    an extended regex the output must match somewhere
#                     (stdout and stderr of the block and of its servers);
#                     several may be given, each must match;
#   reject="REGEX"    an extended regex the output must not match;
#   root              needs root (tracing): skipped, saying so, otherwise;
#                     a leading `sudo ` is dropped (the block runs as root);
#   user              an ordinary user's (a limit that root does not have):
#                     skipped, saying so, as root;
#   fast              part of the fast subset that make test runs
#                     (WALK_FAST=1): a few seconds each;
#   apply="PATCH"     an exercise's code change: PATCH (a file of
#                     solutions/) is applied with git apply and the tree
#                     rebuilt before the block, as the reader who did the
#                     exercise has it, and reverted and rebuilt after;
#   edit="FILE EXPR"  the same for an exercise without a solution file:
#                     `sed -E -i EXPR FILE` (it must change FILE), undone
#                     after; a block with apply or edit changes the tree,
#                     so it does not run in place (the fast subset);
#   manual="WHY"      not run unattended (make test itself, make bench,
#                     make vmtest, installing packages): listed as
#                     "skip ID: manual (WHY)".
#
# Several markers in a row walk the same block several ways (e.g. without
# and with an exercise's patch).
#
# The block runs as written, with these changes so that it runs unattended
# on a shared machine: port 8000 becomes a free port of its own; a server
# started in the foreground (a step's server or `make run` without &, the
# reader's "left" terminal) starts in the background, outside the block's
# job table (so %1 is still the block's first job, as for the reader), once
# whatever server the block started before it has been stopped with
# SIGINT (the reader's Ctrl-C before the next); a server started with &
# stays a job of the block; a foreground `strace -p` (stopped with Ctrl-C
# by the reader) is stopped with SIGINT after 3 s; `top` runs in batch mode
# for 3 one-second samples; `less` becomes `cat`; /tmp/ becomes a
# directory of the block's own (another user's /tmp/pipeline is not
# writable); the reader's own newest server, `pgrep -nx -u "$(id -u)"
# server` or `pgrep -nx server`, is this block's own. Every block runs in a
# session of its own, under a time limit (WALK_TIMEOUT, 60 s), and
# whatever it leaves running is stopped by its process id.
#
# Prints one line per block, "ok ID" or "FAIL ID: what differed" or
# "skip ID: why", and ends with "walkthrough: N ok, N failed, N skipped".
#
#   scripts/walkthrough.sh            every block (a few minutes)
#   WALK_FAST=1 scripts/walkthrough.sh    the fast subset
#   WALK_ONLY="ID ID" scripts/walkthrough.sh  only these blocks
#   WALK_IN_PLACE=1 ...               in this tree instead of a clone
#   WALK_VERBOSE=1 ...                show every block's output, not only a
#                                     failed one's
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
srv='\./(step[0-9]+|epilogue)_[a-z_]+/server'
pre='((taskset -c [0-9,-]+|strace( -[a-z]+)*) )?'
rewrite() {	# rewrite PORT < block > script
	sed -E \
		-e 's/^    //' \
		-e 's/^sudo //' \
		-e "s/127\\.0\\.0\\.1([:\\/])8000/127.0.0.1\\1$1/g" \
		-e 's/\$\(pgrep -nx (-u "\$\(id -u\)" )?server\)/$(pgrep -nx -s 0 server)/g' \
		-e 's/(^|[;&|] *)top -H /\1top -b -n 3 -H /' \
		-e 's/^less /cat /' \
		-e 's#([ <>=])/tmp/#\1$WALK_TMP/#g' \
		-e '/^strace .*-p /{/&/!s/^strace /timeout -s INT 3 strace /;}' \
		-e "s/^make run STEP=([0-9a-z]+)([^&#]*)& *([^# ].*)\$/make run STEP=\\1 PORT=$1\\2>>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& walk_wait; \\3/" \
		-e "s/^make run STEP=([0-9a-z]+)([^&#]*)& *(#.*)?\$/make run STEP=\\1 PORT=$1\\2>>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& walk_wait \\3/" \
		-e "s/^make run STEP=([0-9a-z]+)([^&#]*)(#.*)?\$/walk_left make run STEP=\\1 PORT=$1\\2\\3/" \
		-e "s#^$pre($srv)( [^&\#]*)?& *([^\# ].*)\$#\\1\\4 -p $1\\6 >>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& walk_wait; \\7#" \
		-e "s#^$pre($srv)( [^&\#]*)?& *(\#.*)?\$#\\1\\4 -p $1\\6 >>\"\$WALK_SERVER_LOG\" 2>\\&1 \\& walk_wait \\7#" \
		-e "s#^$pre($srv)( [^&\#]*)?(\#.*)?\$#walk_left \\1\\4 -p $1\\6 \\7#"
}

attr() {	# attr NAME: the value of NAME="..." in $marker
	echo "$marker" | sed -n "s/.* $1=\"\\([^\"]*\\)\".*/\\1/p"
}

run_block() {	# run_block: runs $work/block once, sets miss (empty: ok)
	port=$(free_port)
	server=$(attr server)
	rm -rf "$work/tmp" && mkdir -m 700 "$work/tmp"
	{
		echo 'cd "$WALK_TREE" || exit 1'
		# the reader's other terminal: a server started there, and stopped
		# with Ctrl-C before the next one starts
		echo 'walk_wait() { for i in $(seq 100); do ss -Htln "sport = :$WALK_PORT" | grep -q . && return 0; sleep 0.1; done; }'
		echo 'walk_stop() { pgrep -x -s 0 server >/dev/null || return 0; kill -INT $(pgrep -x -s 0 server); for i in $(seq 50); do pgrep -x -s 0 server >/dev/null || return 0; sleep 0.1; done; }'
		echo 'walk_left() { walk_stop; ( "$@" >>"$WALK_SERVER_LOG" 2>&1 & ); walk_wait; }'
		if [ -n "$server" ]; then
			set -- $server
			dir=$(cd "$tree" && ls -d step"$1"_* "$1"_* 2>/dev/null | head -1)
			shift
			echo "walk_left ./$dir/server -p $port $*"
		fi
		rewrite "$port" <"$work/block"
		echo "sleep 1"	# strace and the servers print their tables
	} >"$work/script"
	: >"$work/server.log"
	# setsid in a background job: no fork, so the session's id is $!
	WALK_TREE=$tree WALK_SERVER_LOG=$work/server.log WALK_PORT=$port WALK_TMP=$work/tmp \
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
	while IFS= read -r re; do
		[ -n "$re" ] || continue
		grep -Eq -- "$re" "$work/out" && miss="$miss${miss:+; }unexpected /$re/: $(grep -Em1 -- "$re" "$work/out")"
	done < <(echo "$marker" | grep -o ' reject="[^"]*"' | sed 's/^ reject="//; s/"$//')
	[ "$rc" = 124 ] && miss="$miss${miss:+; }timed out after ${timeout_s} s"
}

# change_tree apply|revert: an exercise's change (apply= or edit=), made
# before the block and undone after; the tree rebuilt each time
change_tree() {
	local patch edit file expr
	patch=$(attr apply) edit=$(attr edit)
	[ -n "$patch$edit" ] || return 0
	file=${edit%% *} expr=${edit#* }
	if [ "$1" = apply ]; then
		if [ -n "$patch" ]; then
			(cd "$tree" && git apply "$patch") 2>"$work/change.log" ||
				{ echo "git apply $patch: $(head -1 "$work/change.log")"; return 1; }
		else
			cp "$tree/$file" "$work/edit.orig" &&
			sed -E -i "$expr" "$tree/$file" &&
			! cmp -s "$tree/$file" "$work/edit.orig" ||
				{ echo "edit $file: sed -E '$expr' changed nothing"; return 1; }
		fi
	else
		if [ -n "$patch" ]; then
			(cd "$tree" && git apply -R "$patch")
		else
			cp "$work/edit.orig" "$tree/$file"
		fi
	fi
	make -s --no-print-directory -C "$tree" all >"$work/change.log" 2>&1 ||
		{ echo "make all after the change: $(tail -1 "$work/change.log")"; return 1; }
}

ok=0 failed=0 skipped=0
grep -n '^<!-- walk [A-Za-z0-9._-]* .*-->$' "$tut" >"$work/markers"
while IFS= read -r m; do
	line=${m%%:*}
	marker=${m#*:}
	id=$(echo "$marker" | awk '{ print $3 }')
	flags=$(echo "$marker" | sed 's/"[^"]*"//g')	# the bare words: root, user, fast
	if [ -n "${WALK_ONLY:-}" ] && ! echo " $WALK_ONLY " | grep -q " $id "; then continue; fi
	if [ -n "${WALK_FAST:-}" ] && ! echo "$flags" | grep -q ' fast '; then continue; fi
	if echo "$flags" | grep -q ' root ' && [ "$(id -u)" != 0 ]; then
		skipped=$((skipped + 1)); echo "skip $id: needs root (as the text says: sudo)"; continue
	fi
	if echo "$flags" | grep -q ' user ' && [ "$(id -u)" = 0 ]; then
		skipped=$((skipped + 1)); echo "skip $id: an ordinary user's (root is not limited the way the text shows)"; continue
	fi
	if [ -n "$(attr manual)" ]; then
		skipped=$((skipped + 1)); echo "skip $id: manual ($(attr manual))"; continue
	fi
	if [ -n "$(attr apply)$(attr edit)" ] && [ -n "${WALK_IN_PLACE:-}" ]; then
		skipped=$((skipped + 1)); echo "skip $id: changes the tree (make walkthrough runs it in a clone)"; continue
	fi
	awk -v from="$line" 'NR <= from { next } !on && /^<!-- walk / { next } /^    / || (/^$/ && on) { on = 1; print; next } { exit }' "$tut" |
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$work/block"
	if [ ! -s "$work/block" ]; then
		failed=$((failed + 1)); echo "FAIL $id: TUTORIAL.md:$line: no indented block after the marker"; continue
	fi
	# The load tools come with `make deps`, not with make test's packages:
	# a block that needs one that is missing is skipped, saying which.
	lack=""
	for tool in ab wrk curl h2load nc top strace taskset cc; do
		grep -Eq "(^|[^A-Za-z0-9_./-])$tool( |$)" "$work/block" || continue
		command -v "$tool" >/dev/null 2>&1 || lack="$lack $tool"
	done
	if [ -n "$lack" ]; then
		skipped=$((skipped + 1))
		echo "skip $id: needs$lack (make deps installs the load tools, as root)"
		continue
	fi
	t0=$(date +%s)
	if ! why=$(change_tree apply); then
		failed=$((failed + 1)); echo "FAIL $id (TUTORIAL.md:$line): $why"
		change_tree revert >/dev/null 2>&1
		continue
	fi
	run_block
	# once more before it counts: on two busy shared cores a short load
	# or an attach can lose its turn (check_trace.sh does the same)
	retried=""
	if [ -n "$miss" ]; then
		retried=", on a second try"
		[ -n "${WALK_VERBOSE:-}" ] && { echo "      first try of $id: $miss"; sed 's/^/      1 /' "$work/out"; }
		run_block
	fi
	why=$(change_tree revert) || miss="$miss${miss:+; }undoing the change: $why"
	if [ -z "$miss" ]; then
		ok=$((ok + 1)); echo "ok   $id ($(( $(date +%s) - t0 )) s$retried)"
		[ -n "${WALK_VERBOSE:-}" ] && sed 's/^/      | /' "$work/out"
	else
		failed=$((failed + 1)); echo "FAIL $id (TUTORIAL.md:$line): $miss"
		sed 's/^/      | /' "$work/out" | tail -8
	fi
done <"$work/markers"
echo "walkthrough: $ok ok, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
