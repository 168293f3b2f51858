# tutorial_hunks.awk - which part of `make diff STEP=NN` each hunk marker of
# TUTORIAL.md quotes; shared by scripts/update_tutorial.sh (which writes the
# blocks) and tests/check_repo.sh (which compares them).
#
#	awk -v dir=DIR -f scripts/tutorial_hunks.awk TUTORIAL.md
#
# DIR holds, for every step NN that has a step before it, NN.diff: what
# `make diff STEP=NN` prints (and epilogue.diff, for STEP=epilogue: NN may
# be "epilogue" wherever it appears below). A step's diff without its ---/+++ header is a
# list of hunks, each from its @@ line to the next; the markers quote that
# list in order, each piece once, none left out:
#
#	<!-- hunk STEP=NN K -->			hunk K
#	<!-- hunks STEP=NN K-L -->		hunks K to L (adjacent, trivial)
#	<!-- hunk STEP=NN K from: LINE -->	hunk K from its line LINE (the
#						whole diff line, with its +, -
#						or space; the comment lines
#						just above it come along) to
#						where the next marker of the
#						step starts: a long hunk quoted
#						in parts, the first part being
#						plain "hunk STEP=NN K"
#
# A piece ends where the step's next marker starts; so a plain marker for K
# must be followed by one that starts hunk K+1, or a part of K itself.
#
# Writes DIR/expect/LINE, the block the marker on line LINE should have;
# DIR/problems, one line per problem ("TUTORIAL.md:LINE: ..."); DIR/missing,
# for update_tutorial.sh, the beginnings of hunks no marker quotes;
# DIR/hunk.NN.K, each hunk with its @@ line numbers blanked; and DIR/count,
# "NN hunks markers" per step.

function load(step,	f, line, n, k) {
	f = dir "/" step ".diff"
	n = 0; k = 0
	while ((getline line < f) > 0) {
		if (line ~ /^@@ /) {
			k++
			first[step, k] = n + 1
		}
		if (k) {
			n++
			body[step, n] = line
			hunk_of[step, n] = k
		}
	}
	close(f)
	nlines[step] = n
	nhunks[step] = k
	first[step, k + 1] = n + 1
}

function problem(line, msg) {
	printf "%s:%d: %s\n", FILENAME_, line, msg > (dir "/problems")
	nproblems++
}

BEGIN {
	while ((getline s < (dir "/steps")) > 0) {
		steps[++nsteps] = s
		load(s)
	}
	FILENAME_ = "TUTORIAL.md"
}

/^<!-- hunks? STEP=/ {
	m = $0
	if (!match(m, /^<!-- hunks? STEP=([0-9][0-9]|epilogue) [0-9]+(-[0-9]+)?( from: .*)? -->$/)) {
		problem(NR, "malformed hunk marker: " $0)
		next
	}
	sub(/^<!-- hunks? STEP=/, "", m)
	sub(/ -->$/, "", m)
	step = substr(m, 1, index(m, " ") - 1)
	m = substr(m, length(step) + 2)
	anchor = ""
	if ((i = index(m, " from: ")) > 0) {
		anchor = substr(m, i + 7)
		m = substr(m, 1, i - 1)
	}
	split(m, r, "-")
	from = r[1] + 0
	to = (2 in r) ? r[2] + 0 : from
	delete r
	nm++
	mline[nm] = NR; mstep[nm] = step; mfrom[nm] = from; mto[nm] = to; manchor[nm] = anchor
}

END {
	# Where each marker starts, as a line of the step's hunk list.
	for (i = 1; i <= nm; i++) {
		s = mstep[i]; L = mline[i]
		if (!(s in nhunks)) {
			problem(L, "STEP=" s ": no such step with a step before it")
			bad[i] = 1; continue
		}
		if (mfrom[i] < 1 || mfrom[i] > mto[i] || mto[i] > nhunks[s]) {
			problem(L, sprintf("STEP=%s hunk(s) %d-%d: make diff STEP=%s has %d hunks", s, mfrom[i], mto[i], s, nhunks[s]))
			bad[i] = 1; continue
		}
		if (manchor[i] == "") {
			start[i] = first[s, mfrom[i]]
		} else {
			# search hunk mfrom from the previous marker's start (if it is
			# in the same hunk) or from the line after the @@
			lo = first[s, mfrom[i]] + 1
			if (s in last && !bad[last[s]] && hunk_of[s, start[last[s]]] == mfrom[i] && start[last[s]] >= lo)
				lo = start[last[s]] + 1
			start[i] = 0
			for (n = lo; n < first[s, mfrom[i] + 1]; n++)
				if (body[s, n] == manchor[i]) { start[i] = n; break }
			# a part starts with the comment just above its line
			while (start[i] > lo && body[s, start[i] - 1] ~ /^[-+ ](\/\*| \*)/)
				start[i]--
			if (!start[i]) {
				problem(L, sprintf("STEP=%s hunk %d has no line \"%s\" (after the previous part): the code changed, pick another line", s, mfrom[i], manchor[i]))
				bad[i] = 1; continue
			}
			if (mto[i] != mfrom[i]) {
				problem(L, "a part (from:) lies within one hunk: no range with it")
				bad[i] = 1; continue
			}
		}
		prev[i] = (s in last) ? last[s] : 0
		last[s] = i
	}
	# Where each ends: where the step's next marker starts.
	for (i = nm; i >= 1; i--) {
		if (bad[i]) continue
		s = mstep[i]
		stop[i] = (s in following) ? start[following[s]] : nlines[s] + 1
		following[s] = i
	}
	for (i = 1; i <= nm; i++) {
		if (bad[i]) continue
		s = mstep[i]; L = mline[i]
		# the first marker of a step starts at hunk 1
		if (!prev[i] && start[i] != 1) {
			miss(s, 1, mfrom[i] - 1)
			problem(L, sprintf("STEP=%s: hunk(s) 1-%d come before this one and are quoted nowhere", s, mfrom[i] - 1))
		}
		if (stop[i] <= start[i]) {
			problem(L, sprintf("STEP=%s: this marker starts before the step's previous one ends: each hunk once, in order", s))
			continue
		}
		# it must end within hunk mto, or at its end
		endh = hunk_of[s, stop[i] - 1]
		if (endh != mto[i]) {
			if (endh > mto[i]) {
				miss(s, mto[i] + 1, endh)
				problem(L, sprintf("STEP=%s: the next quote of the step starts at hunk %d: hunk(s) %d-%d are quoted nowhere", s, hunk_of[s, stop[i]] ? hunk_of[s, stop[i]] : endh + 1, mto[i] + 1, endh))
			} else {
				problem(L, sprintf("STEP=%s: says hunk(s) %d-%d, but the next quote starts in hunk %d", s, mfrom[i], mto[i], endh))
			}
		}
		f = dir "/expect/" L
		printf "" > f
		for (n = start[i]; n < stop[i]; n++)
			print body[s, n] > f
		close(f)
	}
	# every hunk on its own, @@ line numbers blanked, for update_tutorial.sh
	# to recognise a quoted hunk that moved to another number
	for (k = 1; k <= nsteps; k++) {
		s = steps[k]
		for (h = 1; h <= nhunks[s]; h++) {
			f = dir "/hunk." s "." h
			printf "" > f
			for (n = first[s, h]; n < first[s, h + 1]; n++) {
				line = body[s, n]
				if (line ~ /^@@ /)
					sub(/^@@ [^@]*@@/, "@@", line)
				print line > f
			}
			close(f)
		}
	}
	for (k = 1; k <= nsteps; k++) {
		s = steps[k]
		c = 0
		for (i = 1; i <= nm; i++) if (mstep[i] == s && !bad[i]) c++
		if (!c && nhunks[s]) {
			miss(s, 1, nhunks[s])
			problem(0, sprintf("STEP=%s: none of its %d hunks is quoted", s, nhunks[s]))
		}
		print s, nhunks[s], c > (dir "/count")
	}
	printf "" > (dir "/problems")
	printf "" > (dir "/missing")
}

function miss(s, a, b,	k, n, shown) {
	for (k = a; k <= b; k++) {
		printf "STEP=%s hunk %d of %d is quoted nowhere; it begins:\n    %s\n", s, k, nhunks[s], body[s, first[s, k]] > (dir "/missing")
		shown = 0
		for (n = first[s, k] + 1; n < first[s, k + 1] && shown < 3; n++)
			if (body[s, n] ~ /^[-+]/) { printf "    %s\n", body[s, n] > (dir "/missing"); shown++ }
	}
}
