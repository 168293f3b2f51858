#!/usr/bin/env bash
# make tutorial: regenerate what TUTORIAL.md quotes from elsewhere, in place:
# the ```diff block after each <!-- make diff STEP=NN --> marker, the ```c
# block after each <!-- excerpt FILE FUNCTION --> marker, every
# <!-- fig SERVER COLUMN -->value<!-- /fig --> from bench/results.md, and
# the table between <!-- results --> and <!-- /results -->.
# tests/check_repo.sh (part of make test) fails when any of them drifts.
# Prose around a regenerated figure is yours to reread.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

tut=TUTORIAL.md
results=bench/results.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

function_text() {	# function_text FILE NAME
	awk -v name="$2" '
		!on && $0 ~ "^[a-z].*[ *]" name "\\(" { on = 1 }
		on { print }
		on && /^}/ { exit }
	' "$1"
}

# Fenced blocks after markers.
while IFS= read -r line; do
	case "$line" in
	"<!-- make diff STEP="[0-9][0-9]" -->")
		step=${line#<!-- make diff STEP=}
		step=${step% -->}
		printf '%s\n```diff\n' "$line"
		make -s --no-print-directory diff STEP="$step"
		printf '```\n'
		skip=1
		;;
	"<!-- excerpt "*" -->")
		set -- ${line#<!-- excerpt }
		printf '%s\n```c\n' "$line"
		function_text "$1" "$2"
		printf '```\n'
		skip=1
		;;
	*)
		if [ "${skip:-0}" = 1 ]; then
			# drop the old block: its opening fence, body and closing fence
			case "$line" in
			'```'*) if [ "${inblock:-0}" = 1 ]; then skip=0; inblock=0; else inblock=1; fi ;;
			*) [ "${inblock:-0}" = 1 ] || { skip=0; printf '%s\n' "$line"; } ;;
			esac
			continue
		fi
		printf '%s\n' "$line"
		;;
	esac
done <"$tut" >"$work/tut"

# Figures and the results table, when there are results.
if [ -f "$results" ]; then
	awk -v results="$results" '
		BEGIN {
			n = split("close keepalive large sys_close sys_keepalive sys_seq cpu_close cpu_keepalive split idle zc failed", names, " ")
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

if cmp -s "$work/tut" "$tut"; then
	echo "TUTORIAL.md is up to date"
else
	cp "$work/tut" "$tut"
	echo "TUTORIAL.md updated: reread the prose around what changed (git diff TUTORIAL.md)"
fi
