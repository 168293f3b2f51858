#!/usr/bin/env bash
# make valgrind: the finished server (step07) under valgrind's memcheck,
# through a short load of every kind of request and a SIGINT. Passes when
# memcheck reports no error and no leak, and the server exits 0.
#
# The server runs with -s 0 (never sleeps): valgrind 3.19 holds a signal
# while a thread waits in io_uring_enter(2), so a server asleep in its
# wait would never see the SIGINT under valgrind. Spinning, it does.
set -u
cd "$(dirname "$0")/.." || exit 1

command -v valgrind >/dev/null 2>&1 || {
	echo "make valgrind needs valgrind: sudo apt-get install -y valgrind" >&2
	exit 1
}
srv=step07_send_zc/server
[ -x "$srv" ] || { echo "$srv is not built: run make" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill -KILL "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$work/responses" /tmp/vg.responses; rm -rf "$work"' EXIT

valgrind --error-exitcode=3 --leak-check=full --show-leak-kinds=all \
	--errors-for-leak-kinds=all --track-fds=no \
	./"$srv" -p 0 -s 0 -l 100000 >"$work/out" 2>"$work/valgrind" &
pid=$!
for _ in $(seq 200); do
	port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "the server did not start under valgrind:" >&2; cat "$work/valgrind" >&2; exit 1; }
echo "step07_send_zc under valgrind on port $port"

# exchange REQUEST...: send them on one connection, read until it closes
exchange() {
	local req
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	for req in "$@"; do
		printf '%b' "$req" >&3
	done
	timeout 20 cat <&3 >>"$work/responses"
	exec 3<&-
}
ka='GET / HTTP/1.1\r\nHost: x\r\n\r\n'
close='GET / HTTP/1.1\r\nConnection: close\r\n\r\n'
exchange "$ka" "$ka" "$ka" 'GET /large HTTP/1.1\r\n\r\n' "$close"	# keep-alive, pipelined
exchange 'GET /large HTTP/1.0\r\n\r\n'				# zero-copy send, then close
exchange 'GET /nope HTTP/1.1\r\n\r\n'				# 404
exchange 'POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'	# 405 with a body
exchange 'GET / HTTP/9\r\n\r\n'					# 400
exchange "GET / HTTP/1.1\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n"	# 431
clients=()
for _ in 1 2 3 4 5; do						# five at once
	exchange "$close" &
	clients+=($!)
done
wait "${clients[@]}"
# a client that goes away in the middle of a large response
exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /large HTTP/1.1\r\n\r\n' >&3 && head -c 100 <&3 >/dev/null
exec 3<&-

ok=$(grep -ao 'HTTP/1.1 200 OK' "$work/responses" | wc -l)
echo "200 responses: $ok (want 11)"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=""
sed -n '/HEAP SUMMARY/,$p' "$work/valgrind"
if [ "$rc" != 0 ] || [ "$ok" != 11 ] || ! grep -q 'ERROR SUMMARY: 0 errors' "$work/valgrind"; then
	echo "make valgrind: FAILED (exit status $rc)" >&2
	cat "$work/valgrind" >&2
	exit 1
fi
echo "make valgrind: no memory error, no leak, exit status 0"
