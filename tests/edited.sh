#!/usr/bin/env bash
# edited.sh - which of the files that make test's drift checks compare with
# TUTORIAL.md differ from the committed ones (a reader's exercise in
# progress, a solution applied), and how to restore them.
#
#   tests/edited.sh          the edited files, one a line; exit 0
#   tests/edited.sh --note   a note saying which and how to restore them,
#                            once, or nothing when none is edited
#
# Exit 2 when there is no git repository here (a tarball): then nothing can
# tell an edited file from a committed one. TUTORIAL.md being edited as well
# means a maintainer at work: the drift checks are then what is wanted, and
# the callers run them in full (so does CHECK_DRIFT=1).
set -u
cd "$(dirname "$0")/.." || exit 1

compared=('step[0-9][0-9]_*/server.c' 'bench/results.md' 'trace/step[0-9][0-9].txt'
	'solutions/*.patch' 'docs/first_ring.c')

if ! command -v git >/dev/null 2>&1 ||
	[ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$PWD" ]; then
	if [ "${1:-}" = --note ]; then
		echo "NOTE: no git repository here (an archive?), so make test cannot tell an edited"
		echo "      server.c from the one TUTORIAL.md quotes: if you edited one for an exercise,"
		echo "      the drift failures above come from that; undo it (patch -R -p1 < solutions/FILE"
		echo "      for a solution applied with patch, or restore the file from the archive)."
	fi
	exit 2
fi
[ "${CHECK_DRIFT:-}" = 1 ] && exit 0
git status --porcelain --untracked-files=no -- TUTORIAL.md | grep -q . && exit 0

files=$(git status --porcelain --untracked-files=no -- "${compared[@]}" | cut -c4-)
[ -n "$files" ] || exit 0
if [ "${1:-}" != --note ]; then
	echo "$files"
	exit 0
fi
echo "NOTE: edited since the last commit, so TUTORIAL.md's drift checks that compare"
echo "      them are skipped (they run in full on a clean tree, or with CHECK_DRIFT=1):"
echo "$files" | sed 's/^/        /'
echo "      to see the edit: git diff --stat; to undo it: git checkout -- FILE,"
echo "      or git apply -R solutions/stepNN-NAME.patch for a solution you applied."
exit 0
