#!/usr/bin/env bash
# make bench: every step and nginx, measured side by side on loopback.
#
# For each server: requests/s with wrk (median of RUNS runs of SECONDS s)
# for GET / with "Connection: close", GET / kept alive (where the server
# keeps connections), and GET /large (1 MiB); syscalls per request under
# wrk and with a sequential client (strace -c -f); server CPU time per
# request, all threads counted, the kernel's SQ thread included
# (/proc/PID/task/*/stat); CPU use while idle; for step07 how many large
# sends were zero-copied; and, where h2load is installed (nghttp2-client),
# requests/s with HTTP/1.1 pipelining for servers that keep connections
# (h2load --h1 -c10 -m10: ten connections, ten requests in flight on
# each). Writes results.md and results.svg into BENCH_OUT:
# bench/out/ by default, which git ignores, so a run never dirties the tree;
# `make bench-publish` (BENCH_OUT=bench) replaces the committed results that
# TUTORIAL.md's figures quote, for maintainers.
#
#   bench/run.sh                    everything (about 3 minutes on 2 cores)
#   RUNS=1 SECONDS_PER_RUN=1 bench/run.sh    a quick look
#   SERVERS="step05_peek_spin nginx" bench/run.sh
set -u
cd "$(dirname "$0")/.." || exit 1

RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-2}
CONNS=${CONNS:-50}
LARGE=1048576
BENCH_OUT=${BENCH_OUT:-bench/out}
mkdir -p "$BENCH_OUT" || exit 1
OUT_MD=$BENCH_OUT/results.md
OUT_SVG=$BENCH_OUT/results.svg
work=$(mktemp -d)
server_pid=""

cleanup() {
	[ -n "${BENCH_KEEP_LOG:-}" ] && cp "$work/wrk.log" "$BENCH_KEEP_LOG" 2>/dev/null
	[ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
	pkill -KILL -f "$work/nginx.conf" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

die() { echo "bench: $*" >&2; exit 1; }
for tool in wrk ab strace; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run make deps (as root), or: sudo apt-get install -y wrk apache2-utils nginx-light strace"
done
have_nginx=1
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || have_nginx=0
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

servers=${SERVERS:-"$(ls -d step[0-9][0-9]_* epilogue_* | tr '\n' ' ') nginx"}
PIPE_REQUESTS=${PIPE_REQUESTS:-200000}
have_h2load=1
command -v h2load >/dev/null 2>&1 || have_h2load=0
nservers=$(echo $servers | wc -w)

# ---- the machine --------------------------------------------------------
cores=$(nproc)
kernel=$(uname -r)
liburing=$(pkg-config --modversion liburing 2>/dev/null || echo unknown)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
machine="$cores cores ($cpu), Linux $kernel, liburing $liburing, $(date -u +%Y-%m-%d)"
if [ "$cores" -lt 4 ]; then
	sharing="Client (wrk, 1 thread) and server share all $cores cores: nothing is pinned."
	pin_server=""
	pin_client=""
else
	sharing="Server pinned to cores 0-1 (its SQ thread inherits that), wrk to cores 2-$((cores - 1))."
	pin_server="taskset -c 0-1"
	pin_client="taskset -c 2-$((cores - 1))"
fi

# ---- progress ------------------------------------------------------------
started=$(date +%s)
# Per server: 3 loads (2 without keep-alive) x RUNS x SECS, plus ~2*SECS of
# strace runs and 3 s of idle measurement.
est_per_server=$((3 * RUNS * SECS + 3 * SECS + 8))
progress() {	# progress INDEX NAME WHAT
	local left=$(( (nservers - $1) * est_per_server ))
	printf '[%d/%d] %-26s %-34s ~%ds left\n' "$1" "$nservers" "$2" "$3" "$left"
}

# ---- helpers ---------------------------------------------------------------
server_pids() {	# the server and its children (nginx's workers)
	echo "$1" $(pgrep -P "$1")
}

cpu_split() {	# CPU ticks: "server-threads sq-threads machine-busy", and the time
	local p d app=0 sq=0 ticks
	for p in $(server_pids "$1"); do
		for d in /proc/"$p"/task/*; do
			[ -r "$d/stat" ] || continue
			# utime and stime are fields 14 and 15, after "(comm)"
			ticks=$(sed 's/.*) //' "$d/stat" | awk '{ print $12 + $13 }')
			case "$(cat "$d/comm" 2>/dev/null)" in
			iou-sqp*) sq=$((sq + ticks)) ;;
			*) app=$((app + ticks)) ;;
			esac
		done
	done
	# user nice system irq softirq steal, all cores
	echo "$app $sq $(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat) $(date +%s%N)"
}

cpu_ticks() {	# all threads of a process and its children
	cpu_split "$1" | awk '{ print $1 + $2 }'
}
clk_tck=$(getconf CLK_TCK)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

wrk_run() {	# wrk_run URL SECONDS [header] -> "requests req_per_s errors"
	local out
	if [ -n "${3:-}" ]; then
		out=$(timeout $(( $2 + 10 )) $pin_client wrk -t1 -c"$CONNS" -d"$2"s -H "$3" "$1" 2>&1)
	else
		out=$(timeout $(( $2 + 10 )) $pin_client wrk -t1 -c"$CONNS" -d"$2"s "$1" 2>&1)
	fi
	echo "$out" >>"$work/wrk.log"
	echo "$out" | awk '
		/requests in/ { n = $1 }
		/^Requests\/sec/ { r = $2 }
		/Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
		/Non-2xx/ { e += $NF }
		END { printf "%d %s %d\n", n, (r == "" ? 0 : r), e }' | tee -a "$work/runs"
}

# h2load_run URL -> "requests req_per_s errors": PIPE_REQUESTS requests
# over 10 connections, 10 in flight on each (HTTP/1.1 pipelining).
h2load_run() {
	local out
	out=$(timeout 120 $pin_client h2load --h1 -n"$PIPE_REQUESTS" -c10 -m10 -t1 "$1" 2>&1)
	echo "$out" >>"$work/wrk.log"
	echo "$out" | awk '
		/^finished in/ { r = $4 }
		/^requests:/ { gsub(",", ""); n = $8; e += $10 + $12 + $14 }
		/^status codes:/ { gsub(",", ""); e += $5 + $7 + $9 }
		END { printf "%d %s %d\n", n, (r == "" ? 0 : r), (n == "" ? 1 : e) }' | tee -a "$work/runs"
}

failed_requests() {	# errors wrk saw since the last call
	awk '{ e += $3 } END { print e + 0 }' "$work/runs" 2>/dev/null
	rm -f "$work/runs"
}

start_step() {	# start_step DIR -> sets server_pid, port
	local line
	$pin_server ./"$1"/server -p 0 -l "$LARGE" >"$work/out" 2>"$work/err" &
	server_pid=$!
	for _ in $(seq 50); do
		line=$(head -n 1 "$work/out" 2>/dev/null)
		[ -n "$line" ] && break
		sleep 0.1
	done
	[ -n "$line" ] || die "$1 did not start: $(cat "$work/err")"
	port=${line##*:}
}

start_nginx() {
	# nginx's worker runs as another user when started as root: let it read.
	chmod 755 "$work"
	awk -v n="$LARGE" 'BEGIN { t = "Have a nice day!\n"; while (n > 0) { printf "%s", substr(t, 1, n); n -= 17 } }' >"$work/large"
	chmod 644 "$work/large"
	port=$(( 20000 + RANDOM % 20000 ))
	cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	sendfile on;
	client_body_temp_path $work/tmp;
	proxy_temp_path $work/tmp;
	fastcgi_temp_path $work/tmp;
	uwsgi_temp_path $work/tmp;
	scgi_temp_path $work/tmp;
	server {
		listen 127.0.0.1:$port;
		default_type text/plain;
		location = / { return 200 "Have a nice day!\n"; }
		location = /large { alias $work/large; }
	}
}
EOF
	mkdir -p "$work/tmp"
	$pin_server "$NGINX" -c "$work/nginx.conf" -e "$work/nginx.err" >"$work/out" 2>"$work/err" &
	server_pid=$!
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nginx did not start: $(cat "$work/err" "$work/nginx.err" 2>/dev/null)"
}

count_syscalls() {	# count_syscalls CMD... -> syscalls per request while CMD runs
	local tracer requests p pids=()
	for p in $(server_pids "$server_pid"); do
		pids+=(-p "$p")
	done
	timeout 60 strace -f -c -q -o "$work/strace" "${pids[@]}" 2>/dev/null &
	tracer=$!
	sleep 0.3
	requests=$("$@")
	kill -INT "$tracer" 2>/dev/null
	wait "$tracer" 2>/dev/null
	awk -v n="$requests" '$NF == "total" { c = $4 } END { if (n > 0) printf "%.2f", c / n; else print "-" }' "$work/strace"
}
# rps_and_cpu URL [header] -> "req/s server-CPU-us/req split", medians of
# RUNS runs; split is where the cores went, in % of one core: the server's
# own threads / its kernel SQ thread / everything else (wrk, softirq).
rps_and_cpu() {
	local r a0 a1
	rm -f "$work/runs_cpu"
	for _ in $(seq "$RUNS"); do
		a0=$(cpu_split "$server_pid")
		r=$(wrk_run "$1" "$SECS" "${2:-}")
		a1=$(cpu_split "$server_pid")
		echo "$r $a0 $a1" >>"$work/runs_cpu"
	done
	# fields: n rps errors app0 sq0 busy0 ns0 app1 sq1 busy1 ns1
	echo "$(awk '{ print $2 }' "$work/runs_cpu" | median)" \
	     "$(awk -v hz="$clk_tck" '$1 > 0 { print ($8 + $9 - $4 - $5) * 1000000 / hz / $1 }' "$work/runs_cpu" | median)" \
	     "$(share '$8 - $4')/$(share '$9 - $5')/$(share '$10 - $6 - ($8 - $4) - ($9 - $5)')"
}

share() {	# share EXPR: median over the runs of EXPR ticks, in % of one core
	awk -v hz="$clk_tck" "{ print ($1) * 100 / hz / ((\$11 - \$7) / 1e9) }" "$work/runs_cpu" |
		median | xargs printf '%.0f'
}

wrk_count() { wrk_run "$1" "$SECS" "${2:-}" | awk '{ print $1 }'; }
ab_count() {	# sequential: one request at a time
	timeout 60 ab -q $2 -n 500 -c 1 "$1" 2>/dev/null | awk '/^Complete requests/ { print $3 }'
}

# ---- measure ----------------------------------------------------------------
echo "machine: $machine"
echo "$sharing"
printf 'server\tclose\tkeepalive\tlarge\tsys_close\tsys_ka\tsys_seq\tcpu_close\tcpu_ka\tsplit\tidle_pct\tzc\tfailed\tpipelined\n' >"$work/table"
i=0
for name in $servers; do
	i=$((i + 1))
	keepalive=0
	case "$name" in
	nginx)
		if [ "$have_nginx" = 0 ]; then
			echo "[$i/$nservers] nginx: not installed, skipped (apt-get install nginx-light)"
			continue
		fi
		start_nginx
		keepalive=1
		;;
	step06_*|step07_*|epilogue_*)
		start_step "$name"
		keepalive=1
		;;
	*)
		start_step "$name"
		;;
	esac
	base="http://127.0.0.1:$port"

	progress "$i" "$name" "GET / Connection: close"
	read -r close_rps cpu_close split < <(rps_and_cpu "$base/" "Connection: close")

	ka_rps="-"
	cpu_ka="-"
	if [ "$keepalive" = 1 ]; then
		progress "$i" "$name" "GET / keep-alive"
		read -r ka_rps cpu_ka split < <(rps_and_cpu "$base/")
	fi

	pipe_rps="-"
	if [ "$keepalive" = 1 ] && [ "$have_h2load" = 1 ]; then
		progress "$i" "$name" "GET / pipelined (h2load --h1 -m10)"
		pipe_rps=$(for _ in $(seq "$RUNS"); do h2load_run "$base/" | awk '{ print $2 }'; done | median)
	fi

	progress "$i" "$name" "GET /large (1 MiB)"
	large_rps=$(for _ in $(seq "$RUNS"); do wrk_run "$base/large" "$SECS" | awk '{ print $2 }'; done | median)

	progress "$i" "$name" "syscalls under wrk, then sequential"
	sys_close=$(count_syscalls wrk_count "$base/" "Connection: close")
	sys_ka="-"
	if [ "$keepalive" = 1 ]; then
		sys_ka=$(count_syscalls wrk_count "$base/")
		sys_seq=$(count_syscalls ab_count "$base/" -k)
	else
		sys_seq=$(count_syscalls ab_count "$base/" "")
	fi

	progress "$i" "$name" "idle CPU (2 s after load)"
	sleep 2
	t0=$(cpu_ticks "$server_pid")
	sleep 1
	t1=$(cpu_ticks "$server_pid")
	idle=$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" 'BEGIN { printf "%.1f", (b - a) * 100 / hz }')

	kill -INT "$server_pid" 2>/dev/null
	for _ in $(seq 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=""
	zc="-"
	if grep -q '^zero-copy sends:' "$work/out" 2>/dev/null; then
		zc=$(awk '/^zero-copy sends:/ { print $3 " zero-copied, " $7 " copied" }' "$work/out")
	fi
	failed=$(failed_requests)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$close_rps" "$ka_rps" \
		"$large_rps" "$sys_close" "$sys_ka" "$sys_seq" "$cpu_close" "$cpu_ka" "$split" "$idle" "$zc" "$failed" "$pipe_rps" >>"$work/table"
	printf '        %s: req/s %.0f close, %s keep-alive, %s pipelined, %.0f /large; syscalls/req %s close, %s keep-alive, %s sequential; CPU us/req %.1f close, %s keep-alive; cores %% server/SQ/rest %s; idle %s%%; %s failed\n' \
		"$name" "$close_rps" "$ka_rps" "$pipe_rps" "$large_rps" "$sys_close" "$sys_ka" "$sys_seq" "$cpu_close" "$cpu_ka" "$split" "$idle" "$failed"
done

# ---- results.md ---------------------------------------------------------------
{
	echo "# Benchmark results"
	echo
	echo "Machine: $machine."
	echo "$sharing"
	echo "wrk -t1 -c$CONNS, median of $RUNS runs of $SECS s each; loopback only."
	if [ "$have_h2load" = 1 ]; then
		echo "Pipelined: h2load --h1 -n$PIPE_REQUESTS -c10 -m10 -t1, median of $RUNS runs."
	else
		echo "Pipelined: not measured, h2load is not installed (nghttp2-client)."
	fi
	echo
	echo "| server | req/s, close | req/s, keep-alive | req/s, /large 1 MiB | syscalls/req, close | syscalls/req, keep-alive | syscalls/req, sequential | CPU µs/req, close | CPU µs/req, keep-alive | core % server/SQ/rest | idle CPU % | /large sends | failed requests | req/s, pipelined |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
	awk -F'\t' '
		function num(v, fmt) { return v == "-" || v == "" ? "-" : sprintf(fmt, v) }
		NR > 1 {
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,
			num($2, "%.0f"), num($3, "%.0f"), num($4, "%.0f"), $5, $6, $7,
			num($8, "%.1f"), num($9, "%.1f"), $10, $11, $12, $13, num($14, "%.0f") }' "$work/table"
	echo
	echo "Server CPU per request counts every thread of the server, the kernel's"
	echo "SQ thread included, over the throughput runs. \"core % server/SQ/rest\""
	echo "is where the $cores cores went during the keep-alive runs (the closing"
	echo "runs for servers that close), in % of one core: the server's own"
	echo "threads, its kernel SQ thread, and everything else (wrk, the network"
	echo "stack's softirq work). Syscalls are"
	echo "counted with strace -c -f attached (to nginx's worker too), which slows"
	echo "the server down: they come from runs of their own under wrk, and from"
	echo "500 requests of ab -c 1 (sequential; -k for keep-alive servers), not"
	echo "from the throughput runs."
	echo
	echo "![requests per second and syscalls per request](results.svg)"
} >"$OUT_MD"

# ---- results.svg: two bar charts, nginx as a dashed reference line -------------
awk -F'\t' -v machine="$machine" '
function bar(x, y, w, h, color, label) {
	printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>\n", x, y, w, h, color, label
}
NR > 1 {
	n++; name[n] = $1; close_[n] = ($2 == "-" ? 0 : $2); ka[n] = ($3 == "-" ? 0 : $3)
	sys[n] = ($6 != "-" ? $6 : ($5 == "-" ? 0 : $5))
	best = close_[n] > ka[n] ? close_[n] : ka[n]
	if (best > maxr) maxr = best
	if (sys[n] > maxs) maxs = sys[n]
	if ($1 == "nginx") { ng = n }
}
END {
	W = 960; H = 420; top = 50; bottom = 330; left = 60; pw = 420
	if (maxr <= 0) maxr = 1; if (maxs <= 0) maxs = 1
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
	printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	printf "<text x=\"%d\" y=\"20\" font-size=\"14\">Requests per second (wrk, median)</text>\n", left
	printf "<text x=\"%d\" y=\"20\" font-size=\"14\">Syscalls per request under wrk (keep-alive where kept)</text>\n", left + pw + 60
	printf "<text x=\"%d\" y=\"%d\" fill=\"#555\">%s</text>\n", left, H - 10, machine
	slot = pw / n
	for (i = 1; i <= n; i++) {
		x = left + (i - 1) * slot
		h = (bottom - top) * close_[i] / maxr
		bar(x + 2, bottom - h, slot / 2 - 3, h, "#4e79a7", name[i] ": " int(close_[i]) " req/s, close")
		h = (bottom - top) * ka[i] / maxr
		bar(x + slot / 2, bottom - h, slot / 2 - 3, h, "#f28e2b", name[i] ": " int(ka[i]) " req/s, keep-alive")
		printf "<text transform=\"translate(%.1f,%d) rotate(45)\">%s</text>\n", x + 4, bottom + 12, substr(name[i], 1, 6)
		x2 = left + pw + 60 + (i - 1) * slot
		h = (bottom - top) * sys[i] / maxs
		bar(x2 + 4, bottom - h, slot - 8, h, "#59a14f", name[i] ": " sys[i] " syscalls/request")
		printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%s</text>\n", x2 + 4, bottom - h - 3, sys[i]
		printf "<text transform=\"translate(%.1f,%d) rotate(45)\">%s</text>\n", x2 + 4, bottom + 12, substr(name[i], 1, 6)
	}
	if (ng) {
		y = bottom - (bottom - top) * (close_[ng] > ka[ng] ? close_[ng] : ka[ng]) / maxr
		printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e15759\" stroke-dasharray=\"6,4\"/>\n", left, y, left + pw, y
		printf "<text x=\"%d\" y=\"%.1f\" fill=\"#e15759\">nginx</text>\n", left + pw - 40, y - 4
		y = bottom - (bottom - top) * sys[ng] / maxs
		printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e15759\" stroke-dasharray=\"6,4\"/>\n", left + pw + 60, y, left + 2 * pw + 60, y
	}
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, bottom, left + pw, bottom
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left + pw + 60, bottom, left + 2 * pw + 60, bottom
	printf "<rect x=\"%d\" y=\"32\" width=\"10\" height=\"10\" fill=\"#4e79a7\"/><text x=\"%d\" y=\"41\">close</text>\n", left + 230, left + 244
	printf "<rect x=\"%d\" y=\"32\" width=\"10\" height=\"10\" fill=\"#f28e2b\"/><text x=\"%d\" y=\"41\">keep-alive</text>\n", left + 290, left + 304
	printf "<text x=\"%d\" y=\"%d\">max %d req/s</text>\n", left, top - 2, maxr
	print "</svg>"
}' "$work/table" >"$OUT_SVG"

echo
cat "$OUT_MD"
echo
echo "wrote $OUT_MD and $OUT_SVG in $(( $(date +%s) - started )) s"
