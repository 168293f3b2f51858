#!/usr/bin/env bash
# check_repo.sh - checks on the repository itself, run by `make test`:
#
#  1. framing: every step, and the epilogue, carries the same request
#     framing code, byte for byte (from "Request framing." to the end of
#     parse_request()), so the fuzzer, which compiles one step, covers them
#     all;
#  2. tutorial: TUTORIAL.md has not drifted from the code or the results:
#       <!-- hunk STEP=NN K -->          the ```diff block that follows is hunk K
#       <!-- hunks STEP=NN K-L -->       (or hunks K to L) of `make diff STEP=NN`,
#                                        split at its @@ lines, without the
#                                        ---/+++ header; every hunk of every
#                                        step appears exactly once, in order,
#                                        and at least one line of prose comes
#                                        between a hunk marker and the fenced
#                                        block before it;
#       <!-- excerpt FILE FUNCTION -->   the ```c block that follows is that
#                                        function of FILE, as it is there;
#       <!-- fig SERVER COLUMN -->V<!-- /fig -->
#                                        V is that cell of bench/results.md
#                                        (COLUMN: close keepalive large
#                                        sys_close sys_keepalive sys_seq cpu_close
#                                        cpu_keepalive split idle zc failed
#                                        pipelined);
#       <!-- trace NN KEY -->V<!-- /trace -->
#                                        V is KEY=V on the summary line
#                                        ("summary: requests=...") of
#                                        trace/stepNN.txt, from make trace;
#     (NN may be "epilogue" in hunk and trace markers: make diff
#     STEP=epilogue, trace/epilogue.txt);
#       <!-- results -->...<!-- /results -->
#                                        the table between is the one in
#                                        bench/results.md;
#     and as a whole: lines inside ```diff blocks are at most half of the
#     file's lines; every relative link or image names a file that exists,
#     and every #anchor a heading; every solutions/stepNN-NAME.patch it
#     names exists, every one there is named, and every step has one
#     (tests/check_solutions.sh checks that they apply and pass).
#
# A file these checks compare that differs from the committed one (a
# server.c edited for an exercise, a solution applied) is named once, with
# how to restore it, and the checks that compare it are skipped; on a clean
# tree, without git, or with CHECK_DRIFT=1 they all run (tests/edited.sh).
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

edited=$(tests/edited.sh)
edited_rc=$?
is_edited() { printf '%s\n' "$edited" | grep -qxF "$1"; }
code_edited=0
printf '%s\n' "$edited" | grep -q '/server\.c$' && code_edited=1
if [ -n "$edited" ]; then
	tests/edited.sh --note
	fail "drift checks skipped for the edited files named above"
fi

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
for f in step[0-9][0-9]_*/server.c epilogue_*/server.c; do
	[ -e "$f" ] || continue
	is_edited "$f" && continue
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
echo "framing: $(ls step[0-9][0-9]_*/server.c epilogue_*/server.c 2>/dev/null | wc -l) servers carry $(wc -l <"$work/framing.first") identical lines of framing code"

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
			split("close keepalive large sys_close sys_keepalive sys_seq cpu_close cpu_keepalive split idle zc failed pipelined", names, " ")
			for (i in names) idx[names[i]] = i + 2
		}
		$2 == server && (col in idx) { print $(idx[col]); found = 1; exit }
		END { if (!found) exit 1 }
	' "$results"
}

nexcerpt=0 nfig=0 nresults=0 nhunk=0
if [ -f "$tut" ] && [ "$code_edited" = 1 ]; then
	echo "tutorial: hunks and excerpts not checked: a server.c is edited (see the note above)"
fi
if [ -f "$tut" ] && [ "$code_edited" = 0 ]; then
	# diff hunks: which part of `make diff STEP=NN` each marker quotes
	# (scripts/tutorial_hunks.awk), and is that what its block says?
	mkdir -p "$work/hunks/expect"
	for d in $(ls -d step[0-9][0-9]_* | sed 1d); do
		s=${d#step}; s=${s%%_*}
		echo "$s" >>"$work/hunks/steps"
		make -s --no-print-directory diff STEP="$s" >"$work/hunks/$s.diff" 2>&1
	done
	if ls -d epilogue_* >/dev/null 2>&1; then
		echo epilogue >>"$work/hunks/steps"
		make -s --no-print-directory diff STEP=epilogue >"$work/hunks/epilogue.diff" 2>&1
	fi
	if grep -n '^<!-- make diff STEP=' "$tut"; then
		fail "$tut: whole-diff markers are gone: quote each hunk with <!-- hunk STEP=NN K -->"
	fi
	awk -v dir="$work/hunks" -f scripts/tutorial_hunks.awk "$tut"
	while IFS= read -r p; do fail "$p"; done <"$work/hunks/problems"
	for f in "$work"/hunks/expect/*; do
		[ -e "$f" ] || continue
		line=${f##*/}
		nhunk=$((nhunk + 1))
		block_after "$line" >"$work/block" || { fail "$tut:$line: no \`\`\`diff block after the marker"; continue; }
		if cmp -s "$work/block" "$f"; then
			pass
		else
			fail "$tut:$line: the block is not what make diff prints there (make tutorial regenerates it):"
			diff -u "$f" "$work/block" | head -10
		fi
	done
	while read -r s n m; do
		echo "tutorial: STEP=$s: $n hunks, quoted in $m blocks"
	done <"$work/hunks/count"
fi
if [ -f "$tut" ]; then

	# prose before every hunk: a line that is not blank, a heading, a
	# comment, an image or a fence, since the last fenced block ended
	awk '
		/^```/ { infence = !infence; if (!infence) prose = 0; next }
		infence { next }
		/^<!-- hunks? STEP=/ { if (!prose) print NR; next }
		/^[ \t]*$/ || /^#/ || /^<!--.*-->$/ || /^!\[/ { next }
		{ prose = 1 }
	' "$tut" >"$work/noprose"
	while read -r line; do
		fail "$tut:$line: no prose between this hunk and the block before it: say what it does first"
	done <"$work/noprose"
	[ -s "$work/noprose" ] || pass

	# diff lines at most half of the file
	total=$(wc -l <"$tut")
	ndl=$(awk '/^```diff$/ { on = 1; next } on && /^```$/ { on = 0; next } on { n++ } END { print n + 0 }' "$tut")
	if [ $((2 * ndl)) -le "$total" ]; then
		pass
	else
		fail "$tut: $ndl of its $total lines are diff: more than half (explain more, quote less)"
	fi

	# solutions: every patch the text names exists, every patch is named,
	# and every step has at least one
	grep -oE 'solutions/(step[0-9][0-9]|epilogue)-[a-z0-9-]*\.patch' "$tut" | sort -u >"$work/named"
	while read -r p; do
		[ -f "$p" ] && pass || fail "$tut names $p, which does not exist"
	done <"$work/named"
	for p in solutions/step[0-9][0-9]-*.patch solutions/epilogue-*.patch; do
		[ -e "$p" ] || continue
		grep -qxF "$p" "$work/named" && pass || fail "$p: no exercise in $tut names it"
	done
	for d in step[0-9][0-9]_* epilogue_*; do
		[ -e "$d" ] || continue
		s=${d%%_*}
		ls solutions/"$s"-*.patch >/dev/null 2>&1 && pass || fail "$d: no solution in solutions/ ($s-NAME.patch) for its exercises"
	done

	# relative links and images name files that exist; #anchors name headings
	awk '/^```/ { f = !f; next } !f && /^#+ / {
		h = tolower($0); sub(/^#+ /, "", h); gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h); print h }' "$tut" >"$work/anchors"
	grep -v '^ \{4\}' "$tut" | grep -o '\](\([^)]*\))' | sed 's/^](\(.*\))$/\1/' | sort -u >"$work/links"
	while read -r target; do
		case "$target" in
		http://* | https://*) ;;
		'#'*)
			grep -qxF "${target#\#}" "$work/anchors" && pass || fail "$tut: link to $target: no such heading" ;;
		*)
			[ -e "${target%%#*}" ] && pass || fail "$tut: link to $target: no such file (for trace/: make trace STEP=NN)" ;;
		esac
	done <"$work/links"

	# C excerpts
	while read -r line file name; do
		[ "$code_edited" = 1 ] && continue
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
		is_edited "$results" && continue
		nfig=$((nfig + 1))
		want=$(cell "$server" "$col") || { fail "$tut: figure $server $col: no such cell in $results"; continue; }
		if [ "$want" = "$value" ]; then
			pass
		else
			fail "$tut: figure $server $col says $value, $results says $want"
		fi
	done < <(grep -o '<!-- fig [^ ]* [a-z_]* -->[^<]*<!-- /fig -->' "$tut" | sed 's/<!-- fig \([^ ]*\) \([a-z_]*\) -->\([^<]*\)<!-- \/fig -->/\1 \2 \3/')

	# figures from the committed traces: <!-- trace NN KEY -->V<!-- /trace -->
	# is KEY=V on the "summary: requests=" line of trace/stepNN.txt
	# (<!-- trace epilogue KEY -->: of trace/epilogue.txt)
	while read -r step key value; do
		is_edited "trace/step$step.txt" && continue
		nfig=$((nfig + 1))
		tf=trace/step$step.txt
		[ "$step" = epilogue ] && tf=trace/epilogue.txt
		want=$(grep -m1 '^summary: requests=' "$tf" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$key=//p")
		if [ -z "$want" ]; then
			fail "$tut: trace figure $step $key: $tf has no $key= on its summary line"
		elif [ "$want" = "$value" ]; then
			pass
		else
			fail "$tut: trace figure $step $key says $value, $tf says $want (make tutorial)"
		fi
	done < <(grep -oE '<!-- trace ([0-9][0-9]|epilogue) [a-z_]* -->[^<]*<!-- /trace -->' "$tut" | sed 's/<!-- trace \([0-9a-z]*\) \([a-z_]*\) -->\([^<]*\)<!-- \/trace -->/\1 \2 \3/')

	# the results table
	if grep -q '^<!-- results -->$' "$tut" && ! is_edited "$results"; then
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
echo "tutorial: $nhunk hunk blocks, $nexcerpt excerpts, $nfig figures, $nresults results table checked; ${ndl:-0} of ${total:-0} lines are diff"

[ "$edited_rc" = 2 ] && [ "$failed" != 0 ] && tests/edited.sh --note
echo "repository checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
