# trace_decode.awk - turns what scripts/trace.sh recorded into a timeline in
# plain words, summary lines, and an SVG. Plain POSIX awk (mawk is enough).
#
#   awk -f trace_decode.awk -v step=NN -v spid=PID -v requests=R -v svg=FILE \
#       [-v title=T -v lost=N -v have_syscalls=1] \
#       STEP/server.c SYSCALL_TABLE TRACE TRACE
#
# server.c: its `enum op { ... };` names the operations in user_data
#   (bits 7..0 the op, bits 31..8 the connection slot; entries count from 0,
#   an entry may say "= N", comments are ignored); step 01 has none.
# SYSCALL_TABLE: "NR name" lines.
# TRACE (read twice): the instance's `trace` file. Pass 1 learns which rings
#   are the server's (those its own threads used); pass 2 decodes. Events
#   before the marker "request 1: ..." (the warm-up) and after "end" are
#   left out.

BEGIN {
	NOTHING = "-"
	lane_name["app"] = "app"
	lane_name["sqt"] = "SQ thread"
	lane_name["wrk"] = "io-wq"
	lane_name["irq"] = "interrupt"
	lane_name["oth"] = "other task"
	lane_long["app"] = "app (server)"
	lane_long["sqt"] = "SQ thread"
	lane_long["wrk"] = "io-wq worker"
	lane_long["irq"] = "interrupt context"
	lane_long["oth"] = "other task"
	colour["sys"] = "#d62728"; what["sys"] = "syscall"
	colour["sub"] = "#1f77b4"; what["sub"] = "submission (SQE)"
	colour["cqe"] = "#2ca02c"; what["cqe"] = "completion (CQE)"
	colour["notif"] = "#17becf"; what["notif"] = "zero-copy NOTIF"
	colour["poll"] = "#ff7f0e"; what["poll"] = "poll armed / woken, wait"
	colour["iowq"] = "#9467bd"; what["iowq"] = "punted to io-wq"
	colour["link"] = "#8c564b"; what["link"] = "link"
	colour["tw"] = "#7f7f7f"; what["tw"] = "task work, file lookup"
	colour["fail"] = "#000000"; what["fail"] = "failure, overflow"
	ncat = split("sys sub cqe notif poll iowq link tw fail", cats, " ")
	split("EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE", errs, " ")
	errs[62] = "ETIME"; errs[95] = "EOPNOTSUPP"; errs[103] = "ECONNABORTED"
	errs[104] = "ECONNRESET"; errs[105] = "ENOBUFS"; errs[107] = "ENOTCONN"
	errs[110] = "ETIMEDOUT"; errs[114] = "EALREADY"; errs[125] = "ECANCELED"
	errs[22] = "EINVAL"; errs[11] = "EAGAIN"; errs[38] = "ENOSYS"
	nsec = 0
	nev = 0
	started = 0
	ended = 0
}

# which file: by name, since the syscall table may be empty; the trace twice
FNR == 1 && FILENAME == ARGV[ARGC - 1] { tpass++ }
{ file = FILENAME == ARGV[1] ? 1 : FILENAME == ARGV[2] ? 2 : 2 + tpass }

# ---- file 1: the step's enum op ----
file == 1 {
	if ($0 ~ /^enum op[ \t]*\{/) { in_enum = 1; next_op = 0; next }
	if (!in_enum) next
	line = $0
	gsub(/\/\*.*\*\//, "", line)
	sub(/\/\/.*/, "", line)
	if (line ~ /\}/) { sub(/\}.*/, "", line); in_enum = 0 }
	n = split(line, parts, ",")
	for (i = 1; i <= n; i++) {
		p = parts[i]
		gsub(/[ \t]/, "", p)
		if (p == "") continue
		if (index(p, "=")) {
			next_op = p; sub(/.*=/, "", next_op); next_op += 0
			sub(/=.*/, "", p)
		}
		nm = p
		sub(/^OP_/, "", nm)
		opname[next_op] = nm
		next_op++
	}
	next
}

# ---- file 2: syscall numbers ----
file == 2 { sysname[$1] = $2; next }

# ---- files 3 and 4: the trace ----
{
	if (!parse($0)) next
}

file == 3 {
	if (ev ~ /^io_uring_/ && !irq && comm != "trace_client") {
		r = fld("ring")
		if (r != "") ours[r] = 1
	}
	next
}

file == 4 {
	if (ev == "tracing_mark_write") {
		if (ended) next
		if (body ~ /^request [0-9]+:/) { new_section(body); next }
		if (body == "end") { close_section(); ended = 1 }
		next
	}
	if (!started || ended) next
	if (ev ~ /^io_uring_/) {
		r = fld("ring")
		if (r != "" && !(r in ours)) next
		if (r == "" && (irq || comm == "trace_client")) next
	}
	decode()
}

END {
	if (!started) {
		print "no request marker in the trace: nothing recorded"
		exit 1
	}
	if (!ended) close_section()
	if (requests == "") requests = nsec
	if (lost + 0 > 0)
		printf "warning: the trace buffer lost %d events: the timeline is incomplete\n", lost
	for (u in zc_wait)
		printf "\nnote: the NOTIF of request %d's %s had not come when the trace ended.\n", zc_wait[u], desc(u)
	print ""
	print "syscalls are counted when they return (one that was waiting when the request began counts; one"
	print "still waiting at the end does not); sqes = io_uring_submit_req, cqes = io_uring_complete."
	for (s = 1; s <= nsec; s++) print summary_line(s, "request=" s)
	print summary_line(0, "requests=" requests)
	write_svg()
}

# ---------------------------------------------------------------- parsing

# "  server-7628    [000] d.s3.   479.851434: io_uring_task_add: ring ..."
function parse(line,    head, rest, i) {
	if (line ~ /^#/) return 0
	if (!match(line, / +\[[0-9]+\] /)) return 0
	head = substr(line, 1, RSTART - 1)
	rest = substr(line, RSTART + RLENGTH)
	sub(/^ +/, "", head)
	if (!match(head, /-[0-9]+$/)) return 0
	comm = substr(head, 1, RSTART - 1)
	pid = substr(head, RSTART + 1)
	if (!match(rest, /^[^ ]+ +[0-9]+\.[0-9]+: /)) return 0
	i = index(rest, " ")
	flags = substr(rest, 1, i - 1)
	rest = substr(rest, i)
	sub(/^ +/, "", rest)
	i = index(rest, ": ")
	ts = substr(rest, 1, i - 1)
	rest = substr(rest, i + 2)
	i = index(rest, ": ")
	if (i == 0) { ev = rest; body = "" }
	else { ev = substr(rest, 1, i - 1); body = substr(rest, i + 2) }
	sub(/ +$/, "", body)
	# the flags' third character: h (hardirq), s (softirq), H (both), z/Z (NMI)
	irq = substr(flags, 3, 1) ~ /[hsHzZ]/
	return 1
}

# the value after "key " in the event's text, up to a comma or a blank
function fld(key,    s, i) {
	s = " " body
	i = index(s, " " key " ")
	if (i == 0) return ""
	s = substr(s, i + length(key) + 2)
	sub(/[, ].*/, "", s)
	return s
}

function hex(s,    i, v, c) {
	sub(/^0x/, "", s)
	v = 0
	s = tolower(s)
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", substr(s, i, 1))
		if (c == 0) break
		v = v * 16 + c - 1
	}
	return v
}

function num(x) { return sprintf("%.0f", x) }

function errname(res,    e) {
	e = -res
	return (e in errs) ? "-" errs[e] : "error " num(res)
}

# ---------------------------------------------------------------- sections

function new_section(text) {
	if (started && !ended) close_section()
	started = 1
	nsec++
	t0 = ts * 1000000
	sec_title[nsec] = text
	print ""
	print "── " text " ──"
	printf "%10s  %-10s  %s\n", "µs", "thread", "event"
	in_section = 1
}

function close_section() {
	in_section = 0
}

function count(key, n) {
	cnt[nsec, key] += n
	cnt[0, key] += n
}

function add_list(key, item) {
	if (index("," lst[nsec, key] ",", "," item ",") == 0)
		lst[nsec, key] = lst[nsec, key] (lst[nsec, key] == "" ? "" : ",") item
	if (index("," lst[0, key] ",", "," item ",") == 0)
		lst[0, key] = lst[0, key] (lst[0, key] == "" ? "" : ",") item
}

function tally(key, item,    k) {
	k = nsec SUBSEP key SUBSEP item
	if (!(k in tal)) { add_list(key, item) }
	tal[k]++
	tal[0, key, item]++
}

function list_out(s, key,    n, i, parts, out) {
	if (lst[s, key] == "") return NOTHING
	n = split(lst[s, key], parts, ",")
	out = ""
	for (i = 1; i <= n; i++)
		out = out (i > 1 ? "," : "") parts[i] ":" tal[s, key, parts[i]]
	return out
}

function summary_line(s, first,    keys, n, i, out) {
	n = split("syscalls sqes cqes poll_arms io_wq links enters submit_enters wakeups app_sqes sqt_sqes recv_sqes accept_sqes more notifs task_work irq", keys, " ")
	out = "summary: " first
	for (i = 1; i <= n; i++) out = out " " keys[i] "=" (cnt[s, keys[i]] + 0)
	out = out " calls=" list_out(s, "calls") " submitted=" list_out(s, "ops")
	out = out " batches=" list_out(s, "batches")
	out = out " step=" step
	return out
}

# ---------------------------------------------------------------- decoding

# user_data as the step encodes it: "RECV (conn 3)"
function opof(ud) { return (ud % 256) in opname ? opname[ud % 256] : "op " (ud % 256) }
function desc(uds,    ud, name, slot) {
	ud = hex(uds)
	if (ud >= 4294967296) return "user_data " uds
	name = opof(ud)
	slot = int(ud / 256)
	if (name ~ /ACCEPT|SWEEP|INSTALL/) return name
	return name " (conn " slot ")"
}
function sdesc(uds,    ud, name) {
	ud = hex(uds)
	if (ud >= 4294967296) return uds
	name = opof(ud)
	if (name ~ /ACCEPT|SWEEP|INSTALL/) return name
	return name " c" int(ud / 256)
}

function emit(lane, cat, text, short,    t) {
	t = ts * 1000000 - t0
	printf "%10.0f  %-10s  %s\n", t, lane_name[lane], text
	nev++
	E_t[nev] = t; E_lane[nev] = lane; E_cat[nev] = cat; E_short[nev] = short
	E_sec[nev] = nsec
	used_lane[lane] = 1
	if (lane == "irq") count("irq", 1)
}

function which_lane() {
	if (irq) return "irq"
	if (pid == spid) return "app"
	if (comm ~ /^iou-sqp/) return "sqt"
	if (comm ~ /^iou-wrk/) return "wrk"
	return "oth"
}

function cflag_text(cf,    out, f) {
	out = ""
	f = cf % 65536
	if (int(f / 2) % 2) out = out "|MORE"
	if (f % 2) out = out "|BUFFER(id " int(cf / 65536) ")"
	if (int(f / 4) % 2) out = out "|SOCK_NONEMPTY"
	if (int(f / 8) % 2) out = out "|NOTIF"
	return substr(out, 2)
}

function result_text(name, res, cf) {
	if (res < 0) {
		if (res == -62 && name ~ /SWEEP|BACKOFF|TIMEOUT/) return "the timer fired"
		return errname(res)
	}
	if (name ~ /ACCEPT/) return "a new connection, " num(res)
	if (name ~ /RECV|READ|DRAIN/) return res == 0 ? "0 bytes: the client closed" : num(res) " bytes"
	if (name ~ /SEND|WRITE/) return num(res) " bytes"
	return res == 0 ? "ok" : "res=" num(res)
}

function null_req(r) { return r == "" || r ~ /^0+$/ }
function setst(r, uds, v) {
	if (!null_req(r)) st[r] = v
	st["ud " uds] = v
}
function getst(r, uds) {
	if (!null_req(r) && (r in st)) return st[r]
	return ("ud " uds) in st ? st["ud " uds] : ""
}
function delst(r, uds) {
	if (!null_req(r)) delete st[r]
	delete st["ud " uds]
}

function decode(    lane, uds, ud, name, req, fl, s, how, res, cf, cft, nr, args, a, i, n, tgt, kind, k) {
	lane = which_lane()
	if (ev == "sys_enter" || ev == "sys_exit") { decode_syscall(lane); return }
	uds = fld("user_data")
	req = fld("req")
	if (ev == "io_uring_submit_req") {
		fl = hex(fld("flags"))
		name = opof(hex(uds))
		s = desc(uds) " submitted"
		if (fld("sq_thread") == "1") { s = s " by the SQ thread"; count("sqt_sqes", 1) }
		else count("app_sqes", 1)
		if (fld("opcode") != name && fld("opcode") != "") s = s " (IORING_OP_" fld("opcode") ")"
		if (int(fl / 4) % 2) s = s ", linked to the next (IOSQE_IO_LINK)"
		if (int(fl / 16) % 2) s = s ", forced async"
		setst(req, uds, "sub")
		req_ud[req] = uds
		req_op[req] = fld("opcode"); ud_op[uds] = fld("opcode")
		count("sqes", 1)
		if (name ~ /^RECV/) count("recv_sqes", 1)
		if (name ~ /^ACCEPT$/) count("accept_sqes", 1)
		tally("ops", name)
		if (cur_enter[pid] != "") batch[pid] = batch[pid] (batch[pid] == "" ? "" : "+") name
		emit(lane, "sub", s, "submit " sdesc(uds) (int(fl / 4) % 2 ? " +link" : ""))
	} else if (ev == "io_uring_file_get") {
		emit(lane, "tw", desc(uds) " looks up its file: fd " fld("fd"), "file " fld("fd"))
	} else if (ev == "io_uring_poll_arm") {
		setst(req, uds, "armed")
		count("poll_arms", 1)
		emit(lane, "poll", desc(uds) " waits: poll armed, nothing to do yet", sdesc(uds) " waits: poll armed")
	} else if (ev == "io_uring_task_add") {
		emit(lane, "poll", desc(uds) " is ready: the wake-up queues task work", sdesc(uds) " ready: task work")
	} else if (ev == "io_uring_task_work_run" || ev == "io_uring_local_work_run") {
		n = fld("count")
		if (n == 0) return
		count("task_work", 1)
		emit(lane, "tw", "task work runs: " n " item" (n == 1 ? "" : "s"), "task work x" n)
	} else if (ev == "io_uring_queue_async_work") {
		setst(req, uds, "async")
		count("io_wq", 1)
		kind = index(body, "hashed queue") ? "hashed" : "normal"
		emit(lane, "iowq", desc(uds) " punted to an io-wq worker (" kind " queue)", sdesc(uds) " -> io-wq")
	} else if (ev == "io_uring_link") {
		tgt = body
		sub(/.* linked after /, "", tgt)
		s = fld("request")
		count("links", 1)
		if (s in req_ud) setst(s, req_ud[s], "linked")
		emit(lane, "link", (tgt in req_ud ? desc(req_ud[tgt]) : "?") " → " (s in req_ud ? desc(req_ud[s]) : "?") " linked", (tgt in req_ud ? opof(hex(req_ud[tgt])) : "?") " -> " (s in req_ud ? opof(hex(req_ud[s])) : "?") " linked")
	} else if (ev == "io_uring_fail_link") {
		emit(lane, "fail", desc(uds) " failed: the link breaks, what follows is cancelled", sdesc(uds) " link broken")
	} else if (ev == "io_uring_complete") {
		res = fld("result") + 0
		cf = hex(fld("cflags"))
		cft = cflag_text(cf)
		name = opof(hex(uds))
		count("cqes", 1)
		tag = "[CQE res=" num(res) (cft != "" ? " flags=" cft : "") "]"
		if (int(cf / 8) % 2) {
			count("notifs", 1)
			s = desc(uds) " NOTIF: the kernel is done with the buffer"
			if (res == -2147483648) s = s " (it copied the data)"
			if ((uds in zc_sec) && zc_sec[uds] != nsec) s = s "; for the send of request " zc_sec[uds]
			delete zc_wait[uds]
			emit(lane, "notif", s "  " tag, sdesc(uds) " NOTIF")
			return
		}
		k = getst(req, uds)
		how = ""
		if (k == "sub") how = " inline"
		else if (k == "armed") how = " after the poll wake-up"
		else if (k == "async") how = " in io-wq"
		else if (k == "linked") how = ", after the request before it in the link"
		if (int(cf / 2) % 2) {
			count("more", 1)
			if ((req in req_op && req_op[req] ~ /_ZC$/) || name ~ /_ZC$/ || ud_op[uds] ~ /_ZC$/) {
				how = how " (F_MORE: a NOTIF follows when the kernel lets go of the buffer)"
				zc_sec[uds] = nsec
				zc_wait[uds] = nsec
			} else how = how " (multishot: more to come)"
		} else delst(req, uds)
		emit(lane, "cqe", desc(uds) " completed" how ": " result_text(name, res, cf) "  " tag, sdesc(uds) " done " num(res) (cft != "" ? " " cft : ""))
	} else if (ev == "io_uring_cqring_wait") {
		emit(lane, "poll", "waits in io_cqring_wait for " fld("min_events") " completion" (fld("min_events") == 1 ? "" : "s"), "wait for " fld("min_events") " CQE")
	} else if (ev == "io_uring_cqe_overflow") {
		emit(lane, "fail", "CQ ring full: " desc(uds) "'s CQE goes to the overflow list", "CQE overflow")
	} else if (ev == "io_uring_req_failed") {
		s = body
		sub(/.*error=/, "", s)
		emit(lane, "fail", desc(uds) (fld("opcode") != opof(hex(uds)) ? " (IORING_OP_" fld("opcode") ")" : "") " failed: " errname(s + 0), sdesc(uds) " failed")
	} else if (ev == "io_uring_short_write") {
		emit(lane, "fail", "short write: wanted " fld("wanted") ", got " fld("got"), "short write")
	} else if (ev == "io_uring_defer") {
		emit(lane, "poll", desc(fld("user_data")) " deferred (drain)", "deferred")
	} else {
		s = ev
		sub(/^io_uring_/, "", s)
		emit(lane, "tw", s ": " body, s)
	}
}

function sysname_of(nr) { return (nr in sysname) ? sysname[nr] : "syscall_" nr }

function decode_syscall(lane,    nr, name, s, args, a, n, i, ret, f, fl, short) {
	if (ev == "sys_enter") {
		# "NR 426 (4, 2, 0, 0, 0, 8)"
		nr = body; sub(/^NR /, "", nr); sub(/ .*/, "", nr)
		name = sysname_of(nr)
		args = body; sub(/^[^(]*\(/, "", args); sub(/\).*/, "", args)
		n = split(args, a, ", ")
		for (i = 1; i <= n; i++) { a[i] = hex(a[i]); if (a[i] < 4294967296) a[i] = num(a[i]) }
		s = name
		short = name
		if (name == "io_uring_enter") {
			fl = a[4]
			f = ""
			if (fl % 2) f = f "|GETEVENTS"
			if (int(fl / 2) % 2) f = f "|SQ_WAKEUP"
			if (int(fl / 4) % 2) f = f "|SQ_WAIT"
			if (int(fl / 8) % 2) f = f "|EXT_ARG"
			if (int(fl / 16) % 2) f = f "|REGISTERED_RING"
			s = s "(to_submit=" num(a[2]) ", min_complete=" num(a[3]) (f != "" ? ", flags=" substr(f, 2) : "") ")"
			short = "io_uring_enter:"
			if (a[2] > 0) short = short " submit " num(a[2])
			if (a[3] > 0) short = short (a[2] > 0 ? "," : "") " wait for " num(a[3])
			if (int(fl / 2) % 2) short = "io_uring_enter: wake SQ thread"
			count("enters", 1)
			if (a[2] > 0) count("submit_enters", 1)
			if (int(fl / 2) % 2) { count("wakeups", 1); s = s ": wakes the SQ thread" }
			else if (a[2] > 0 && a[3] > 0) s = s ": submit, then wait"
			else if (a[2] > 0) s = s ": submit"
			else if (a[3] > 0) s = s ": wait"
		} else if (name ~ /^(accept|accept4|close|fsync|listen|dup)$/) {
			s = s "(fd " a[1] ")"
		} else if (name ~ /^(recvfrom|read|recvmsg)$/) {
			s = s "(fd " a[1] (name == "recvmsg" ? "" : ", up to " a[3] " bytes") ")"
		} else if (name ~ /^(sendto|write)$/) {
			s = s "(fd " a[1] ", " a[3] " bytes)"
		} else if (name == "shutdown") {
			s = s "(fd " a[1] ", " (a[2] == 0 ? "SHUT_RD" : a[2] == 1 ? "SHUT_WR" : "SHUT_RDWR") ")"
		} else if (name ~ /^(setsockopt|getsockopt|fcntl|ioctl|sendmsg|writev|readv)$/) {
			s = s "(fd " a[1] ", ...)"
		}
		if (name != "io_uring_enter") short = s
		sys_pending[pid] = name
		if (name == "io_uring_enter") { cur_enter[pid] = 1; batch[pid] = "" }
		emit(lane, "sys", "syscall " s, short)
		sys_start[pid] = nev
	} else {
		# "NR 426 = 2"
		nr = body; sub(/^NR /, "", nr); sub(/ .*/, "", nr)
		name = sysname_of(nr)
		ret = body; sub(/.*= /, "", ret); ret += 0
		s = "syscall " name " returns " (ret < 0 ? errname(ret) : num(ret))
		if (sys_pending[pid] == "") s = s " (it was waiting before the request began)"
		count("syscalls", 1)
		tally("calls", name)
		emit(lane, "sys", s, name " returns " (ret < 0 ? errname(ret) : num(ret)))
		if (sys_pending[pid] != "") { span_from[nev] = sys_start[pid] }
		else span_from[nev] = -1
		sys_pending[pid] = ""
		if (cur_enter[pid] != "" && batch[pid] != "") tally("batches", batch[pid])
		cur_enter[pid] = ""
		batch[pid] = ""
	}
}

# ---------------------------------------------------------------- SVG

function esc(s) {
	gsub(/&/, "\\&amp;", s)
	gsub(/</, "\\&lt;", s)
	gsub(/>/, "\\&gt;", s)
	return s
}

function write_svg(    s, lanes, nl, i, l, y, x, col, colw, left, top, lab, laneh, w, h, ncol, sec, c, lastsec, ty, ly, fx, legx) {
	nl = 0
	split("app sqt wrk irq", lanes, " ")
	nl = 4
	if (used_lane["oth"]) lanes[++nl] = "oth"
	for (i = 1; i <= nl; i++) lane_y_idx[lanes[i]] = i
	colw = 17; left = 140; lab = 260; laneh = 34
	top = 58 + lab
	# one column per event, one more where each request begins
	lastsec = 0; ncol = 0
	for (i = 1; i <= nev; i++) {
		if (E_sec[i] != lastsec) { ncol++; sec_col[E_sec[i]] = ncol; lastsec = E_sec[i] }
		ncol++
		E_col[i] = ncol
	}
	w = left + (ncol + 1) * colw + 20
	if (w < 760) w = 760
	ty = top + nl * laneh + 6		# the time row
	ly = ty + 62				# the legend
	h = ly + 64 + 18 * int(900 / w)
	print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" > svg
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"11\">\n", w, h, w, h > svg
	printf "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n" > svg
	printf "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", esc(title) > svg
	printf "<text x=\"12\" y=\"40\" fill=\"#444\">one request through the kernel, from io_uring's tracepoints: one column per event, in order; under each, µs since its request began</text>\n" > svg
	# lanes
	for (i = 1; i <= nl; i++) {
		y = top + (i - 1) * laneh
		printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", left - 4, y, w - left - 10, laneh, (i % 2 ? "#f4f4f4" : "#fbfbfb") > svg
		printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-weight=\"bold\">%s</text>\n", left - 10, y + laneh / 2 + 4, lane_long[lanes[i]] > svg
	}
	printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#555\">µs</text>\n", left - 10, ty + 12 > svg
	# where each request begins
	for (sec = 1; sec <= nsec; sec++) {
		if (!(sec in sec_col)) continue
		x = left + sec_col[sec] * colw - colw + 1
		s = sec_title[sec]
		sub(/ on .*/, "", s)
		printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\" stroke-dasharray=\"4,3\"/>\n", x, 50, x, ty > svg
		printf "<text transform=\"translate(%d,%d) rotate(-90)\" font-weight=\"bold\">%s</text>\n", x + 13, top - 4, esc(s) > svg
	}
	# time spent inside a syscall
	for (i = 1; i <= nev; i++) {
		if (E_cat[i] != "sys" || !(i in span_from)) continue
		y = top + (lane_y_idx[E_lane[i]] - 1) * laneh
		fx = span_from[i] > 0 ? left + E_col[span_from[i]] * colw - colw / 2 : left
		x = left + E_col[i] * colw - colw / 2
		printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" fill-opacity=\"0.18\"/>\n", fx, y + 8, x - fx, laneh - 16, colour["sys"] > svg
	}
	# the events
	for (i = 1; i <= nev; i++) {
		x = left + E_col[i] * colw - colw / 2
		y = top + (lane_y_idx[E_lane[i]] - 1) * laneh + laneh / 2
		c = colour[E_cat[i]]
		printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-opacity=\"0.25\"/>\n", x, top - lab + 6, x, y, c > svg
		if (E_cat[i] == "sys")
			printf "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x - 5, y - 5, c > svg
		else
			printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/>\n", x, y, c > svg
		printf "<text transform=\"translate(%d,%d) rotate(-90)\" fill=\"%s\">%s</text>\n", x + 4, top - 4, c, esc(E_short[i]) > svg
		printf "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"end\" font-size=\"9\" fill=\"#555\">%.0f</text>\n", x + 3, ty, E_t[i] > svg
	}
	if (nev == 0)
		printf "<text x=\"%d\" y=\"%d\" fill=\"#555\">no event of the server's threads or ring</text>\n", left, top + laneh / 2 > svg
	# legend and summary
	legx = 12
	for (i = 1; i <= ncat; i++) {
		c = cats[i]
		if (legx + 24 + length(what[c]) * 6.2 > w - 10) { legx = 12; ly += 18 }
		if (c == "sys")
			printf "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", legx, ly - 9, colour[c] > svg
		else
			printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/>\n", legx + 5, ly - 4, colour[c] > svg
		printf "<text x=\"%d\" y=\"%d\">%s</text>\n", legx + 14, ly, what[c] > svg
		legx += 24 + length(what[c]) * 6.2
	}
	if (have_syscalls == "")
		printf "<text x=\"12\" y=\"%d\" fill=\"#d62728\">this kernel has no raw_syscalls tracepoints: syscalls are not shown</text>\n", ly + 18 > svg
	s = summary_line(0, "requests=" requests)
	sub(/ enters=.*/, "", s)
	printf "<text x=\"12\" y=\"%d\" font-family=\"DejaVu Sans Mono, monospace\" font-size=\"11\" fill=\"#333\">%s</text>\n", ly + 36, esc(s) > svg
	print "</svg>" > svg
	close(svg)
}
