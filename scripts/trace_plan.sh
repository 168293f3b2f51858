# trace_plan.sh - sourced by trace_all.sh and tests/check_trace.sh: how
# each step is traced, the way its chapter tells it. For step NN, sets
# target (the path requested) and args (server options): step 05 with a
# spin budget that outlasts the request (-s 100000), step 07 fetching
# /large (its zero-copy send); the others fetch / with default options.
trace_plan() {
	target=/
	args=
	case $1 in
	05) args="-s 100000" ;;
	07) target=/large ;;
	esac
}
