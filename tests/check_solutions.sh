#!/usr/bin/env bash
# check_solutions.sh - run by `make test`: the solutions to TUTORIAL.md's
# exercises still work on the servers as they are now.
#
# For every solutions/stepNN-NAME.patch (and epilogue-NAME.patch, for the
# epilogue's directory, epilogue_*): copy step NN's directory to a
# scratch tree, `git apply --check` the patch there (a patch that no longer
# applies fails here, with the command to see why), apply it, build, and
# run that step's contract suite against the patched server:
#
#	SERVER_DIR=scratch STEPS=stepNN CK_RUN_SUITE=stepNN_name tests/run_tests
#
# It also builds and runs docs/first_ring.c, the program the fundamentals
# chapter quotes. About 5-10 s per patch. SOLUTIONS="step02 step06" checks
# only those steps' patches. SANITIZE=1 builds the patched servers with the
# sanitizers, as make test SANITIZE=1 does the rest.
#
# Prints one line per patch and ends with "solutions: N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
root=$PWD

passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ok() { passed=$((passed + 1)); echo "ok:   $*"; }
# apply [--check] PATCH, in the current directory: git apply, or patch(1)
# where git is missing (a tarball rather than a clone).
apply() {
	if command -v git >/dev/null 2>&1; then
		git apply "$@"
	elif [ "$1" = --check ]; then
		patch -p1 --dry-run -s -f <"$2" >&2
	else
		patch -p1 -s -f <"$1" >&2
	fi
}
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

if [ ! -x tests/run_tests ]; then
	make -s --no-print-directory -C tests >/dev/null || { echo "FAIL: cannot build tests/run_tests"; exit 1; }
fi
make_flags=()
[ -n "${SANITIZE:-}" ] && make_flags+=("SANITIZE=$SANITIZE")
[ "${SANITIZE:-}" = 1 ] && export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-3}

# docs/first_ring.c: builds, runs, and its completions come in the order
# the fundamentals chapter prints.
if cc -Wall -Wextra -o "$work/first_ring" docs/first_ring.c \
	$(pkg-config --cflags --libs liburing) 2>"$work/cc.log" &&
	"$work/first_ring" >"$work/first_ring.out" 2>&1 &&
	[ "$(sed -n '2s/,.*//p;3s/,.*//p' "$work/first_ring.out" | tr '\n' ' ')" = "completion: user_data 2 completion: user_data 1 " ]; then
	ok "docs/first_ring.c builds and runs as TUTORIAL.md shows"
else
	bad "docs/first_ring.c: does not build, or does not print what TUTORIAL.md shows:"
	cat "$work/cc.log" "$work/first_ring.out" 2>/dev/null | head -10
fi

# A step whose server.c is edited (an exercise in progress): its patches
# would not apply; check_repo.sh names the file once and how to restore it.
edited=$(tests/edited.sh)
shopt -s nullglob
patches=(solutions/step[0-9][0-9]-*.patch solutions/epilogue-*.patch)
if [ ${#patches[@]} = 0 ]; then
	bad "no solutions/stepNN-*.patch at all"
fi
for patch in "${patches[@]}"; do
	name=${patch#solutions/}
	name=${name%.patch}
	step=${name%%-*}
	if [ -n "${SOLUTIONS:-}" ] && ! echo " $SOLUTIONS " | grep -q " $step "; then
		continue
	fi
	dirs=("$step"_*/)
	if [ ${#dirs[@]} != 1 ]; then
		bad "$patch: no single directory ${step}_* for it"
		continue
	fi
	dir=${dirs[0]%/}
	if printf '%s\n' "$edited" | grep -qxF -e "$dir/server.c" -e "$patch"; then
		echo "skip: $patch: $dir/server.c or the patch is edited (tests/edited.sh says how to restore it)"
		continue
	fi
	scratch="$work/$name"
	mkdir -p "$scratch"
	cp -R "$dir" "$scratch/"
	rm -f "$scratch/$dir/server" "$scratch/$dir/.build-flags"
	if ! (cd "$scratch" && apply --check "$root/$patch") 2>"$work/apply.log"; then
		bad "$patch no longer applies to $dir (its server changed; redo the exercise on it and regenerate the patch):"
		sed 's/^/      /' "$work/apply.log" | head -5
		echo "      to see the rejects: git apply --reject $patch"
		continue
	fi
	(cd "$scratch" && apply "$root/$patch")
	if ! make -s --no-print-directory -C "$scratch/$dir" "${make_flags[@]}" >"$work/build.log" 2>&1; then
		bad "$patch applies, but $dir does not build with it:"
		sed 's/^/      /' "$work/build.log" | head -10
		continue
	fi
	start=$(date +%s)
	if SERVER_DIR="$scratch" STEPS="$step" CK_RUN_SUITE="$dir" tests/run_tests >"$work/run.log" 2>&1; then
		ok "$patch: $dir builds and passes its contract suite ($(( $(date +%s) - start )) s; $(grep -m1 -o '[0-9]*%: Checks: [0-9]*' "$work/run.log"))"
	else
		bad "$patch: $dir with it fails its contract suite ($dir):"
		grep -E 'Checks:|:[EF]:' "$work/run.log" | sed 's/^/      /' | head -10
	fi
done

echo "solutions: $passed passed, $failed failed"
[ "$failed" = 0 ]
