#!/usr/bin/env bash
# check_repo.sh - checks on the repository itself, run by `make test`:
#
#  1. framing: every step carries the same request framing code, byte for
#     byte (from "Request framing." to the end of parse_request()), so the
#     fuzzer, which compiles one step, covers them all;
#  2. tutorial: TUTORIAL.md has not drifted from the code or the results:
#       <!-- make diff STEP=NN -->       the ```diff block that follows is
#                                        exactly what `make diff STEP=NN` prints;
#       <!-- excerpt FILE FUNCTION -->   the ```c block that follows is that
#                                        function of FILE, as it is there;
#       <!-- fig SERVER COLUMN -->V<!-- /fig -->
#                                        V is that cell of bench/results.md
#                                        (COLUMN: close keepalive large
#                                        sys_close sys_keepalive sys_seq cpu_close
#                                        cpu_keepalive split idle zc failed);
#       <!-- results -->...<!-- /results -->
#                                        the table between is the one in
#                                        bench/results.md.
#
# Prints what it checked and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- 1. framing ------------------------------------------------------------
framing() {	# framing FILE: the framing code of a step
	awk '
		/^ \* Request framing\./ { on = 1; print "/*" }
		on { print }
		on && /^static enum parse_status parse_request\(/ { fn = 1 }
		on && fn && /^}/ { exit }
	' "$1"
}
first=""
for f in step[0-9][0-9]_*/server.c; do
	framing "$f" >"$work/framing"
	if [ ! -s "$work/framing" ]; then
		fail "$f: no request framing code found (\" * Request framing.\" ... parse_request)"
		continue
	fi
	if [ -z "$first" ]; then
		first=$f
		cp "$work/framing" "$work/framing.first"
		pass
	elif cmp -s "$work/framing" "$work/framing.first"; then
		pass
	else
		fail "$f: request framing code differs from $first:"
		diff -u "$work/framing.first" "$work/framing" | head -20
	fi
done
echo "framing: $(ls step[0-9][0-9]_*/server.c | wc -l) steps carry $(wc -l <"$work/framing.first") identical lines of framing code"

# ---- 2. tutorial -----------------------------------------------------------
tut=TUTORIAL.md
results=bench/results.md

# block_after LINE: the fenced block that starts on the line after LINE
block_after() {
	awk -v from="$1" '
		NR == from + 1 && /^```/ { on = 1; next }
		NR == from + 1 { exit 1 }
		on && /^```$/ { exit }
		on { print }
	' "$tut"
}

function_text() {	# function_text FILE NAME
	awk -v name="$2" '
		!on && $0 ~ "^[a-z].*[ *]" name "\\(" { on = 1 }
		on { print }
		on && /^}/ { exit }
	' "$1"
}

cell() {	# cell SERVER COLUMN: a cell of the results table
	awk -F' *\\| *' -v server="$1" -v col="$2" '
		BEGIN {
			split("close keepalive large sys_close sys_keepalive sys_seq cpu_close cpu_keepalive split idle zc failed", names, " ")
			for (i in names) idx[names[i]] = i + 2
		}
		$2 == server && (col in idx) { print $(idx[col]); found = 1; exit }
		END { if (!found) exit 1 }
	' "$results"
}

ndiff=0 nexcerpt=0 nfig=0 nresults=0
if [ -f "$tut" ]; then
	# diff blocks
	while IFS=: read -r line step; do
		ndiff=$((ndiff + 1))
		block_after "$line" >"$work/block" || { fail "$tut:$line: no \`\`\`diff block after the marker"; continue; }
		make -s --no-print-directory diff STEP="$step" >"$work/want" 2>&1
		if cmp -s "$work/block" "$work/want"; then
			pass
		else
			fail "$tut:$line: the diff block for STEP=$step is not what 'make diff STEP=$step' prints (regenerate it):"
			diff -u "$work/want" "$work/block" | head -10
		fi
	done < <(grep -n '^<!-- make diff STEP=[0-9][0-9] -->$' "$tut" | sed 's/^\([0-9]*\):<!-- make diff STEP=\([0-9]*\) -->$/\1:\2/')

	# C excerpts
	while read -r line file name; do
		nexcerpt=$((nexcerpt + 1))
		block_after "$line" >"$work/block" || { fail "$tut:$line: no \`\`\`c block after the marker"; continue; }
		function_text "$file" "$name" >"$work/want" 2>/dev/null
		if [ ! -s "$work/want" ]; then
			fail "$tut:$line: $file has no function $name"
		elif cmp -s "$work/block" "$work/want"; then
			pass
		else
			fail "$tut:$line: the excerpt of $name is not what $file has:"
			diff -u "$work/want" "$work/block" | head -10
		fi
	done < <(grep -n '^<!-- excerpt [^ ]* [a-z_0-9]* -->$' "$tut" | sed 's/^\([0-9]*\):<!-- excerpt \([^ ]*\) \([a-z_0-9]*\) -->$/\1 \2 \3/')

	# quoted figures
	while read -r server col value; do
		nfig=$((nfig + 1))
		want=$(cell "$server" "$col") || { fail "$tut: figure $server $col: no such cell in $results"; continue; }
		if [ "$want" = "$value" ]; then
			pass
		else
			fail "$tut: figure $server $col says $value, $results says $want"
		fi
	done < <(grep -o '<!-- fig [^ ]* [a-z_]* -->[^<]*<!-- /fig -->' "$tut" | sed 's/<!-- fig \([^ ]*\) \([a-z_]*\) -->\([^<]*\)<!-- \/fig -->/\1 \2 \3/')

	# the results table
	if grep -q '^<!-- results -->$' "$tut"; then
		nresults=1
		sed -n '/^<!-- results -->$/,/^<!-- \/results -->$/p' "$tut" | grep '^|' >"$work/block"
		grep '^|' "$results" >"$work/want"
		if cmp -s "$work/block" "$work/want"; then
			pass
		else
			fail "$tut: the results table is not the one in $results (copy it again after make bench)"
		fi
	fi
fi
echo "tutorial: $ndiff diff blocks, $nexcerpt excerpts, $nfig figures, $nresults results table checked"

echo "repository checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
