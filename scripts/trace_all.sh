#!/usr/bin/env bash
# trace_all.sh - make trace-all: every step's timeline into trace/, as
# stepNN.txt (what scripts/trace.sh prints) and stepNN.svg, the figures
# TUTORIAL.md shows. Each step is traced the way its chapter tells it:
# step 05 with a spin budget that outlasts the request (-s 100000), step 07
# fetching /large (its zero-copy send); the others, the epilogue too,
# fetch / (trace/epilogue.txt and .svg).
set -u
cd "$(dirname "$0")/.." || exit 1
. scripts/trace_plan.sh
out=${1:-trace}
for dir in step[0-9][0-9]_* epilogue_*; do
	n=${dir#step}
	n=${n%%_*}
	f=step$n
	[ "$n" = epilogue ] && f=epilogue
	trace_plan "$n"
	scripts/trace.sh -o "$out" -t "$target" -a "$args" "$n" >/dev/null || exit $?
	grep '^summary: requests=' "$out/$f.txt"
	echo "$out/$f.svg"
done
