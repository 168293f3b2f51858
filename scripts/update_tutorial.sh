#!/usr/bin/env bash
# make tutorial: regenerate what TUTORIAL.md quotes from elsewhere, in place:
# the ```diff block after each <!-- hunk STEP=NN K --> (or
# <!-- hunks STEP=NN K-L -->) marker, from `make diff STEP=NN` split at its
# @@ lines (no ---/+++ header); the ```c block after each
# <!-- excerpt FILE FUNCTION --> marker; every
# <!-- fig SERVER COLUMN -->value<!-- /fig --> from bench/results.md;
# every <!-- trace NN KEY -->value<!-- /trace --> from the summary line of
# trace/stepNN.txt (make trace); NN may be "epilogue" in both kinds of
# marker (make diff STEP=epilogue, trace/epilogue.txt); and
# the table between <!-- results --> and <!-- /results -->.
# tests/check_repo.sh (part of make test) fails when any of them drifts.
#
# It then says what needs a writer: the hunks whose text changed (reread the
# prose before them), the hunks no marker quotes (with their first lines, to
# find where they belong), and markers past a step's last hunk. Prose around
# a regenerated figure is yours to reread too.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

tut=TUTORIAL.md
results=bench/results.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every step with a step before it: its diff, and which part of it each
# hunk marker quotes (scripts/tutorial_hunks.awk).
mkdir -p "$work/hunks/expect"
for d in $(ls -d step[0-9][0-9]_* | sed 1d); do
	s=${d#step}; s=${s%%_*}
	echo "$s" >>"$work/hunks/steps"
	make -s --no-print-directory diff STEP="$s" >"$work/hunks/$s.diff"
done
# The epilogue: its diff against step 07 (make diff STEP=epilogue).
if ls -d epilogue_* >/dev/null 2>&1; then
	echo epilogue >>"$work/hunks/steps"
	make -s --no-print-directory diff STEP=epilogue >"$work/hunks/epilogue.diff"
fi
awk -v dir="$work/hunks" -f scripts/tutorial_hunks.awk "$tut"
: >"$work/notes"

function_text() {	# function_text FILE NAME
	awk -v name="$2" '
		!on && $0 ~ "^[a-z].*[ *]" name "\\(" { on = 1 }
		on { print }
		on && /^}/ { exit }
	' "$1"
}

# Fenced blocks after markers.
n=0 skip=0 inblock=0 old="" expect=""
while IFS= read -r line; do
	n=$((n + 1))
	case "$line" in
	"<!-- hunk STEP="*" -->" | "<!-- hunks STEP="*" -->")
		printf '%s\n```diff\n' "$line"
		expect="$work/hunks/expect/$n"
		[ -e "$expect" ] && cat "$expect"
		skip=1 old="" mark="$line"
		;;
	"<!-- excerpt "*" -->")
		set -- ${line#<!-- excerpt }
		printf '%s\n```c\n' "$line"
		function_text "$1" "$2"
		printf '```\n'
		skip=1 old="" expect=""
		;;
	*)
		if [ "$skip" = 1 ]; then
			# drop the old block: its opening fence, body and closing fence
			case "$line" in
			'```'*)
				if [ "$inblock" = 1 ]; then
					skip=0 inblock=0
					if [ -n "$expect" ]; then
						if [ ! -e "$expect" ]; then
							# a marker with a problem: keep its old block
							printf '%s```\n' "$old"
						else
							printf '```\n'
							# @@ line numbers move whenever code above moves: not a change
							printf '%s' "$old" | sed 's/^@@ [^@]*@@/@@/' >"$work/old"
							sed 's/^@@ [^@]*@@/@@/' "$expect" >"$work/new"
							if ! cmp -s "$work/old" "$work/new"; then
								m=${mark#<!-- }
								m=${m% -->}
								moved=""
								for h in "$work"/hunks/hunk."$(echo "$m" | sed 's/.*STEP=\([0-9a-z]*\).*/\1/')".*; do
									[ -e "$h" ] && cmp -s "$work/old" "$h" && moved=${h##*.}
								done
								if [ -n "$moved" ]; then
									echo "TUTORIAL.md:$n: $m: what it quoted is now hunk $moved: renumber the markers of the step" >>"$work/notes"
								else
									echo "TUTORIAL.md:$n: $m: the code changed: reread the prose before it" >>"$work/notes"
								fi
							fi
						fi
					fi
				else
					inblock=1
				fi
				;;
			*)
				if [ "$inblock" = 1 ]; then
					old="$old$line
"
				else
					skip=0
					printf '%s\n' "$line"
				fi
				;;
			esac
			continue
		fi
		printf '%s\n' "$line"
		;;
	esac
done <"$tut" >"$work/tut"
cat "$work/hunks/problems" >>"$work/notes"
cat "$work/hunks/missing" >>"$work/notes"

# Figures and the results table, when there are results.
if [ -f "$results" ]; then
	awk -v results="$results" '
		BEGIN {
			n = split("close keepalive large sys_close sys_keepalive sys_seq cpu_close cpu_keepalive split idle zc failed pipelined", names, " ")
			while ((getline row < results) > 0) {
				if (row !~ /^\|/) continue
				table = table row "\n"
				nf = split(row, f, / *\| */)
				for (i = 1; i <= n; i++) cell[f[2], names[i]] = f[i + 2]
			}
		}
		/^<!-- results -->$/ { print; printf "%s", table; skipping = 1; next }
		/^<!-- \/results -->$/ { skipping = 0 }
		skipping { next }
		{
			out = ""
			while (match($0, /<!-- fig [^ ]+ [a-z_]+ -->[^<]*<!-- \/fig -->/)) {
				m = substr($0, RSTART, RLENGTH)
				split(m, w, " ")
				key = w[3] SUBSEP w[4]
				val = (key in cell) ? cell[key] : "?"
				out = out substr($0, 1, RSTART - 1) "<!-- fig " w[3] " " w[4] " -->" val "<!-- /fig -->"
				$0 = substr($0, RSTART + RLENGTH)
			}
			print out $0
		}
	' "$work/tut" >"$work/tut2"
	mv "$work/tut2" "$work/tut"
fi

# Figures from the committed traces (trace/stepNN.txt's summary line).
awk '
	function summary(step,	f, line, n, i, kv, out) {
		if (step in loaded) return
		loaded[step] = 1
		f = step == "epilogue" ? "trace/epilogue.txt" : "trace/step" step ".txt"
		while ((getline line < f) > 0)
			if (line ~ /^summary: requests=/) {
				n = split(line, kv, " ")
				for (i = 2; i <= n; i++)
					if (index(kv[i], "=")) val[step, substr(kv[i], 1, index(kv[i], "=") - 1)] = substr(kv[i], index(kv[i], "=") + 1)
				break
			}
		close(f)
	}
	{
		out = ""
		while (match($0, /<!-- trace ([0-9][0-9]|epilogue) [a-z_]+ -->[^<]*<!-- \/trace -->/)) {
			m = substr($0, RSTART, RLENGTH)
			split(m, w, " ")
			summary(w[3])
			v = ((w[3], w[4]) in val) ? val[w[3], w[4]] : "?"
			out = out substr($0, 1, RSTART - 1) "<!-- trace " w[3] " " w[4] " -->" v "<!-- /trace -->"
			$0 = substr($0, RSTART + RLENGTH)
		}
		print out $0
	}
' "$work/tut" >"$work/tut2"
mv "$work/tut2" "$work/tut"

if cmp -s "$work/tut" "$tut"; then
	echo "TUTORIAL.md is up to date"
else
	cp "$work/tut" "$tut"
	echo "TUTORIAL.md updated: reread the prose around what changed (git diff TUTORIAL.md)"
fi
if [ -s "$work/notes" ]; then
	echo "to do in the prose:"
	cat "$work/notes"
fi
