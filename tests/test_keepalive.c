// SPDX-License-Identifier: MIT
/*
 * test_keepalive.c - black-box tests of what the keep-alive steps add:
 * many requests per connection, pipelining, the HTTP/1.x rules for when a
 * connection closes, the provided buffer ring running dry (-B), a full
 * fixed-file table (-c), the idle sweep (-t), clients that reset,
 * clients that pipeline and do not read (a fair share of the ring),
 * slow readers of a large body (progress is not idleness), the ring's
 * counters printed at exit, and for zero-copy steps the /large
 * body and the count printed at exit.  One Check suite,
 * "<step>/keepalive", per row of steps[] with keep_alive set; rows with
 * zero_copy also get the tcase zerocopy.  A new keep-alive step is a new
 * row in steps.c, not new tests.
 *
 * tcases (for CK_RUN_CASE): keepalive, limits, resets, fairness, progress,
 * counters, zerocopy.
 * The rest of the environment is the one test_steps.c describes; STEPS
 * selects these suites together with their step's.
 *
 * The fixture is fixture.h's, as for every suite: each test is its own
 * process with its own server on an ephemeral port of 127.0.0.1, every
 * wait is bounded, and the checked teardown kills whatever is left.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fixture.h"
#include "test_keepalive.h"

/* Slots free asynchronously (cancel, then close): retry this long. */
#define SLOT_FREE_MS 1500
#define SEQUENTIAL_REQUESTS 1000

/* -t 1 closes a connection idle for 1 s at the next sweep: 1..2 s. */
#define IDLE_ARG "1"
#define IDLE_MIN_MS 990		/* 1 s less the rounding of now_ms() */
#define IDLE_MAX_MS 2500
/* How often the busy client asks while another one idles. */
#define BUSY_GAP_MS 250

/* -B 4 buffers of 4 KiB for 16 connections that each need 2 at once. */
#define RING_BUFFERS "4"
#define RING_CONNS 16
#define RING_ROUNDS 5
#define RING_BATCH 3
#define RING_REQ_BYTES 2000	/* 3 fill 2 buffers, and fit the 8 KiB head buffer */

/* The fixed-file table of -c 4 is full with 4 held connections. */
#define TABLE_ARG "4"
#define TABLE_SLOTS 4
#define REFUSE_WITHIN_MS 1000

#define ABUSE_SLOTS_ARG "32"
#define ABUSE_SLOTS 32
#define ABUSE_WAVES 3
#define ABUSE_PER_WAVE 20	/* 60 abusive clients in all */
#define ABUSE_WAVE_MS 2000
#define RESET_LARGE_ARG "8388608"	/* 8 MiB: still being sent when the client resets */
#define READ_BEFORE_RESET 65536

/*
 * The line the server prints at exit, "ring: ..." (see ring_exit_line()):
 * with -B 1, RING_COUNT_CONNS connections at once send RING_BATCH
 * requests of RING_REQ_BYTES in one write, RING_COUNT_ROUNDS times: more
 * than one 4 KiB buffer each time, so the ring runs dry every round.
 */
#define RING_COUNT_BUFFERS "1"
#define RING_COUNT_CONNS 8
#define RING_COUNT_ROUNDS 4
/* With the default ring, this many requests one after another. */
#define RING_COUNT_SEQUENTIAL 20

#define ZC_CONCURRENT 20
#define ZC_REPORT_KEPT 4	/* /large sends on one kept-alive connection ... */
#define ZC_REPORT_CLOSED 4	/* ... and on a connection each */

/* ---- helpers ---------------------------------------------------------- */

/* /large of @want bytes, keeping the connection or closing it. */
static void assert_large_conn(const struct http_response *r, size_t want, bool keep,
			      const char *what)
{
	assert_large(r, want, what);
	assert_connection(r, keep, what);
}

/*
 * A new connection that gets GET / answered, retried for @ms while the
 * server may still refuse it for want of a free slot.  Returns it open.
 */
static int served_connection(int ms, const char *what)
{
	long long deadline = now_ms() + ms;
	struct http_response r;
	char last[512] = "";
	int fd, tries = 0, wait;

	for (;;) {
		tries++;
		fd = tcp_connect(srv.port, IO_TIMEOUT_MS);
		if (fd >= 0) {
			memset(&r, 0, sizeof(r));
			/* A refused connection is closed at once; a served one answers. */
			wait = (int)(deadline - now_ms());
			if (!send_all(fd, REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS) &&
			    !http_read_responses(fd, 1, wait > 200 ? wait : 200, &r) &&
			    root_ok(&r, true)) {
				http_response_free(&r);
				return fd;
			}
			snprintf(last, sizeof(last), "%s", r.raw_len ? r.raw : harness_error());
			http_response_free(&r);
			close(fd);
		} else {
			snprintf(last, sizeof(last), "%s", harness_error());
		}
		if (now_ms() >= deadline)
			ck_abort_msg("%s: %s: no new connection served within %d ms (%d tries); last: %s",
				     st->name, what, ms, tries, last);
		sleep_ms(50);
	}
}

/* Open fds once the server has served and closed a connection. */
static int fd_baseline(void)
{
	int fd, base;

	fd = served_connection(SLOT_FREE_MS, "warming up");
	close(fd);
	sleep_ms(50);
	base = proc_fd_count(srv.pid);
	ck_assert_msg(base > 0, "%s: %s", st->name, harness_error());
	return base;
}

/* Closing finishes asynchronously (io_uring): give it up to 1 s. */
static void assert_fds_back(int base, const char *what)
{
	long long deadline = now_ms() + 1000;
	int count;

	for (;;) {
		count = proc_fd_count(srv.pid);
		ck_assert_msg(count > 0, "%s: %s", st->name, harness_error());
		if (count <= base || now_ms() >= deadline)
			break;
		sleep_ms(20);
	}
	ck_assert_msg(count <= base, "%s: %s: %d open fds, %d before", st->name, what,
		      count, base);
}

static void read_some(int fd, size_t n, const char *what)
{
	size_t got;

	got = drain(fd, n, IO_TIMEOUT_MS);
	ck_assert_msg(got >= n, "%s: %s: only %zu of %zu bytes within %d ms", st->name,
		      what, got, n, IO_TIMEOUT_MS);
}

/*
 * The zero-copy tests are about IORING_OP_SEND_ZC; a server on a kernel
 * without it says so at startup and falls back to plain sends.
 */
static bool zero_copy_unavailable(void)
{
	char err[1024], *line;

	server_stderr(&srv, err, sizeof(err));
	line = strstr(err, "lacks IORING_OP_SEND_ZC");
	if (!line)
		return false;
	line[strcspn(line, "\n")] = '\0';
	printf("SKIP: %s: the server says its kernel %s\n", st->name, line);
	return true;
}

/* GET / padded with one header to exactly @size bytes. */
static size_t padded_request(char *buf, size_t size)
{
	static const char head[] = "GET / HTTP/1.1\r\n" HOST_HDR "X-Pad: ";
	size_t len = sizeof(head) - 1, pad = size - len - 4;

	memcpy(buf, head, len);
	memset(buf + len, 'p', pad);
	memcpy(buf + len + pad, "\r\n\r\n", 4);
	return size;
}

/*
 * steps[@idx]'s server with "-B @buffers", and @n connections to it, open
 * in @fds: @rounds times, each sends RING_BATCH requests of
 * RING_REQ_BYTES at once, all @n together, and each gets RING_BATCH
 * answers to GET /, kept alive.  Returns the bytes each sends a round.
 */
static size_t ring_load(int idx, const char *buffers, int *fds, int n, int rounds)
{
	const char *args[] = { "-B", buffers, NULL };
	struct http_response r[RING_CONNS * RING_BATCH];
	char batch[RING_BATCH * RING_REQ_BYTES], what[96];
	int round, i, ret;
	size_t len = 0;

	ck_assert_int_le(n, RING_CONNS);
	start_step(idx, args);
	for (i = 0; i < RING_BATCH; i++)
		len += padded_request(batch + len, RING_REQ_BYTES);
	for (i = 0; i < n; i++)
		fds[i] = connect_or_fail();
	for (round = 0; round < rounds; round++) {
		memset(r, 0, sizeof(r));
		ret = http_many_on(fds, n, batch, len, RING_BATCH, IO_TIMEOUT_MS, r);
		ck_assert_msg(ret == 0, "%s: -B %s, round %d of %d, %d connections x %d pipelined requests: %s",
			      st->name, buffers, round + 1, rounds, n, RING_BATCH,
			      harness_error());
		for (i = 0; i < n * RING_BATCH; i++) {
			snprintf(what, sizeof(what), "-B %s, round %d, connection %d, response %d",
				 buffers, round + 1, i / RING_BATCH, i % RING_BATCH + 1);
			assert_root(&r[i], true, what);
			http_response_free(&r[i]);
		}
	}
	return len;
}

/* What the line "ring: ..." that a keep-alive step prints at exit counts. */
struct ring_counts {
	unsigned long connections;	/* accepted */
	unsigned long requests;		/* answered */
	unsigned long rearms;		/* multishot recvs armed again ... */
	unsigned long enobufs;		/* ... of which after ENOBUFS */
	unsigned long pauses, overflows, short_sends;
	unsigned long spilled;		/* bytes copied past a fair share */
};

/*
 * Stop the server with SIGINT (it must exit 0) and read its counts from
 * the line it prints at exit into @c; fails, quoting its stdout, if
 * there is no such line or it does not parse.  Prints the line.
 */
static void ring_exit_line(struct ring_counts *c, const char *what)
{
	static const char fmt[] =
		"ring: %lu connections, %lu requests; multishot recv re-armed %lu times (%lu after ENOBUFS), paused %lu times; CQ overflowed %lu times; %lu short sends; %lu bytes spilled%n";
	char out[4096], q[512];
	const char *line = NULL, *p = out;
	int end = 0;

	stop_server(SIGINT, what);
	server_stdout(&srv, out, sizeof(out));
	/* The last line that starts so: the ready line comes first. */
	for (;;) {
		if (!strncmp(p, "ring: ", 6))
			line = p;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	ck_assert_msg(line, "%s: %s: no line \"ring: ...\" on stdout at exit; stdout: %s",
		      st->name, what, quote_bytes(out, strlen(out), q, sizeof(q)));
	memset(c, 0, sizeof(*c));
	ck_assert_msg(sscanf(line, fmt, &c->connections, &c->requests, &c->rearms, &c->enobufs,
			     &c->pauses, &c->overflows, &c->short_sends, &c->spilled, &end) == 8 &&
		      end > 0 && (line[end] == '\n' || line[end] == '\0'),
		      "%s: %s: the exit line does not read \"ring: N connections, N requests; multishot recv re-armed N times (N after ENOBUFS), paused N times; CQ overflowed N times; N short sends; N bytes spilled\": %s",
		      st->name, what, quote_bytes(line, strcspn(line, "\n"), q, sizeof(q)));
	printf("%s: %s: %.*s\n", st->name, what, (int)strcspn(line, "\n"), line);
}

/* ---- tcase keepalive -------------------------------------------------- */

START_TEST(thousand_requests_one_connection)
{
	struct http_response r = { 0 };
	char what[64];
	int fd, i;

	start_step(_i, NULL);
	fd = connect_or_fail();
	/* Check's asserts only on failure: 1000 passing ones would slow the loop. */
	for (i = 0; i < SEQUENTIAL_REQUESTS; i++) {
		snprintf(what, sizeof(what), "request %d of %d on one connection", i + 1,
			 SEQUENTIAL_REQUESTS);
		if (send_all(fd, REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS) ||
		    http_read_responses(fd, 1, IO_TIMEOUT_MS, &r))
			ck_abort_msg("%s: %s: %s", st->name, what, harness_error());
		if (!root_ok(&r, true))
			assert_root(&r, true, what);
		http_response_free(&r);
	}
	close(fd);
}
END_TEST

START_TEST(pipelined_answered_in_order)
{
	/* /large is cut to 40 bytes: its body tells it from /'s 17. */
	static const char *const args[] = { "-l", "40", NULL };
	static const char *const paths[] = { "/", "/large", "/large", "/", "/",
					     "/large", "/", "/large", "/", "/nope" };
	const int n = sizeof(paths) / sizeof(paths[0]);
	struct http_response r[sizeof(paths) / sizeof(paths[0])];
	char req[2048], what[96];
	size_t len = 0;
	int fd, i;

	start_step(_i, args);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(req + len, sizeof(req) - len,
					"GET %s HTTP/1.1\r\n" HOST_HDR "\r\n", paths[i]);
	fd = connect_or_fail();
	/* One write: all ten requests are in the server's buffer at once. */
	send_or_fail(fd, req, len, "10 pipelined requests");
	memset(r, 0, sizeof(r));
	read_or_fail(fd, n, r, "10 pipelined requests");
	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "pipelined response %d (GET %s)", i + 1, paths[i]);
		if (!strcmp(paths[i], "/"))
			assert_root(&r[i], true, what);
		else if (!strcmp(paths[i], "/large"))
			assert_large_conn(&r[i], 40, true, what);
		else {
			assert_status(&r[i], 404, what);
			assert_connection(&r[i], false, what);
		}
		http_response_free(&r[i]);
	}
	assert_closes(fd, CLOSE_AFTER_MS, "after the 404 that ends the pipeline");
	close(fd);
}
END_TEST

START_TEST(large_then_root)
{
	struct http_response r;
	int fd;

	start_step(_i, NULL);
	fd = connect_or_fail();
	request_on(fd, REQ_LARGE, &r, "GET /large");
	assert_large_conn(&r, DEFAULT_LARGE, true, "GET /large");
	http_response_free(&r);
	root_on(fd, REQ_ROOT, true, "GET / after /large on the same connection");
	close(fd);
}
END_TEST

START_TEST(large_and_root_pipelined)
{
	static const char req[] = REQ_LARGE REQ_ROOT;
	struct http_response r[2];
	int fd;

	start_step(_i, NULL);
	fd = connect_or_fail();
	/* GET / arrives while the 1 MiB is still going out: it must wait its turn. */
	send_or_fail(fd, req, strlen(req), "GET /large and GET / in one write");
	memset(r, 0, sizeof(r));
	read_or_fail(fd, 2, r, "GET /large and GET / in one write");
	assert_large_conn(&r[0], DEFAULT_LARGE, true, "pipelined GET /large");
	assert_root(&r[1], true, "GET / pipelined behind /large");
	http_response_free(&r[0]);
	http_response_free(&r[1]);
	close(fd);
}
END_TEST

START_TEST(http10_closes)
{
	int fd;

	start_step(_i, NULL);
	fd = connect_or_fail();
	root_on(fd, "GET / HTTP/1.0\r\n\r\n", false, "HTTP/1.0 GET /");
	close(fd);
}
END_TEST

START_TEST(http10_keep_alive_stays_open)
{
	static const char req[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

	start_step(_i, NULL);
	/* The second answered on the same connection: it stayed open. */
	two_requests(req, req, true, "a second HTTP/1.0 keep-alive request");
}
END_TEST

START_TEST(connection_close_ends_kept_connection)
{
	start_step(_i, NULL);
	two_requests(REQ_ROOT, REQ_ROOT_CLOSE, false,
		     "GET / with Connection: close, second on the connection");
}
END_TEST

START_TEST(not_found_closes_kept_connection)
{
	/* The GET / behind the 404 must not be answered. */
	static const char req[] = REQ_NOPE REQ_ROOT;
	struct http_response r;
	int fd;

	start_step(_i, NULL);
	fd = connect_or_fail();
	root_on(fd, REQ_ROOT, true, "GET /");
	request_on(fd, req, &r, "GET /nope then GET / in one write");
	assert_status(&r, 404, "GET /nope on a kept-alive connection");
	assert_connection(&r, false, "GET /nope on a kept-alive connection");
	http_response_free(&r);
	assert_closes(fd, CLOSE_AFTER_MS, "after a 404 (nothing for the GET / behind it)");
	close(fd);
}
END_TEST

START_TEST(request_with_body_closes)
{
	/* The server reads no bodies: left in the stream, one would pass for a request. */
	static const char *const reqs[] = {
		"GET / HTTP/1.1\r\n" HOST_HDR "Content-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\n" HOST_HDR "Transfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n",
	};
	char what[256], q[200];
	size_t i;
	int fd;

	start_step(_i, NULL);
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		snprintf(what, sizeof(what), "request with a body %s",
			 quote_bytes(reqs[i], strlen(reqs[i]), q, sizeof(q)));
		fd = connect_or_fail();
		root_on(fd, reqs[i], false, what);
		close(fd);
	}
}
END_TEST

START_TEST(content_length_zero_keeps_alive)
{
	static const char req[] = "GET / HTTP/1.1\r\n" HOST_HDR "Content-Length: 0\r\n\r\n";

	start_step(_i, NULL);
	two_requests(req, REQ_ROOT, true, "GET / after one with Content-Length: 0");
}
END_TEST

START_TEST(split_requests_on_kept_connection)
{
	const size_t len = strlen(REQ_ROOT);
	struct http_response r = { 0 };
	size_t off, chunk;
	int fd, ret;

	start_step(_i, NULL);
	fd = connect_or_fail();
	root_on(fd, REQ_ROOT, true, "GET / in one write");

	/* The second request on the connection, one byte per segment. */
	ret = send_bytewise(fd, REQ_ROOT, len, 1000);
	ck_assert_msg(ret == 0, "%s: sending byte by byte: %s", st->name, harness_error());
	read_or_fail(fd, 1, &r, "second GET / sent one byte at a time");
	assert_root(&r, true, "second GET / sent one byte at a time");
	http_response_free(&r);

	/* The third in 5-byte writes, with time for the server to read each. */
	for (off = 0; off < len; off += chunk) {
		chunk = len - off < 5 ? len - off : 5;
		send_or_fail(fd, REQ_ROOT + off, chunk, "third GET / in 5-byte writes");
		sleep_ms(5);
	}
	read_or_fail(fd, 1, &r, "third GET / in 5-byte writes");
	assert_root(&r, true, "third GET / in 5-byte writes");
	http_response_free(&r);
	close(fd);
}
END_TEST

START_TEST(request_straddles_writes)
{
	static const char *const args[] = { "-l", "40", NULL };
	static const char req[] = REQ_ROOT REQ_LARGE;
	const size_t cut = strlen(REQ_ROOT) + 10;
	struct http_response r = { 0 };
	int fd;

	start_step(_i, args);
	fd = connect_or_fail();
	/* One write ends a request and begins the next: the rest must be kept. */
	send_or_fail(fd, req, cut, "GET / and the start of GET /large");
	read_or_fail(fd, 1, &r, "GET / followed by part of the next request");
	assert_root(&r, true, "GET / followed by part of the next request");
	http_response_free(&r);
	sleep_ms(50);
	send_or_fail(fd, req + cut, strlen(req) - cut, "the rest of GET /large");
	read_or_fail(fd, 1, &r, "GET /large begun in the previous write");
	assert_large_conn(&r, 40, true, "GET /large begun in the previous write");
	http_response_free(&r);
	close(fd);
}
END_TEST

/* ---- tcase limits ----------------------------------------------------- */

START_TEST(buffer_ring_exhaustion)
{
	int fds[RING_CONNS], i;
	enum peer_event ev;

	/*
	 * Each round, every connection delivers 6000 bytes at once: 2
	 * buffers each, 32 wanted from a ring of 4.  The recvs that find
	 * it dry end with ENOBUFS and must be re-armed, bytes intact.
	 */
	ring_load(_i, RING_BUFFERS, fds, RING_CONNS, RING_ROUNDS);
	/* Answered once each: nothing more may come. */
	sleep_ms(100);
	for (i = 0; i < RING_CONNS; i++) {
		ev = peer_wait(fds[i], 0);
		ck_assert_msg(ev == PEER_SILENT, "%s: -B %s: connection %d after its last round: %s%s%s",
			      st->name, RING_BUFFERS, i, peer_event_str(ev),
			      ev == PEER_DATA ? ": " : "", ev == PEER_DATA ? harness_error() : "");
		close(fds[i]);
	}
	assert_running();
}
END_TEST

START_TEST(fixed_file_table_full)
{
	static const char *const args[] = { "-c", TABLE_ARG, NULL };
	int held[TABLE_SLOTS], extra, fd, i;
	enum peer_event ev;
	char what[96];
	long long start;

	start_step(_i, args);
	for (i = 0; i < TABLE_SLOTS; i++) {
		snprintf(what, sizeof(what), "held connection %d of %d", i + 1, TABLE_SLOTS);
		held[i] = connect_or_fail();
		root_on(held[i], REQ_ROOT, true, what);
	}
	/*
	 * The kernel completes the handshake from the listen backlog; with
	 * no free slot the server's accept fails and the socket is closed.
	 * The client must see that, not wait forever for an answer.
	 */
	extra = connect_or_fail();
	start = now_ms();
	send_all(extra, REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS);	/* may meet the RST */
	ev = peer_wait(extra, REFUSE_WITHIN_MS * 3);
	ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
		      "%s: -c %s: connection %d with every slot held: want it closed or reset, got %s after %lld ms%s%s",
		      st->name, TABLE_ARG, TABLE_SLOTS + 1, peer_event_str(ev), now_ms() - start,
		      ev == PEER_DATA ? ": " : "", ev == PEER_DATA ? harness_error() : "");
	ck_assert_msg(now_ms() - start <= REFUSE_WITHIN_MS,
		      "%s: -c %s: connection %d was closed only after %lld ms, want %d",
		      st->name, TABLE_ARG, TABLE_SLOTS + 1, now_ms() - start, REFUSE_WITHIN_MS);
	printf("%s: -c %s: connection %d %s after %lld ms\n", st->name, TABLE_ARG,
	       TABLE_SLOTS + 1, peer_event_str(ev), now_ms() - start);
	close(extra);

	for (i = 0; i < TABLE_SLOTS; i++) {
		snprintf(what, sizeof(what), "held connection %d after a refusal", i + 1);
		root_on(held[i], REQ_ROOT, true, what);
	}
	close(held[0]);
	close(held[1]);
	fd = served_connection(SLOT_FREE_MS, "after 2 of the held connections closed");
	close(fd);
	close(held[2]);
	close(held[3]);
}
END_TEST

static const char *const idle_args[] = { "-t", IDLE_ARG, NULL };

/*
 * Until @idle is closed by the server, a busy client on a connection of
 * its own asks every BUSY_GAP_MS: it must be served, and it must not be
 * closed as idle.  @idle must close between IDLE_MIN_MS and IDLE_MAX_MS
 * after @since; then the busy one, never idle that long, must still be
 * served.  Closes both.
 */
static void closed_while_busy(int idle, long long since, const char *what)
{
	int busy = connect_or_fail();
	enum peer_event ev;
	char bwhat[160];
	long long took;
	int asked = 0;

	for (;;) {
		ev = peer_wait(idle, BUSY_GAP_MS);
		if (ev != PEER_SILENT)
			break;
		ck_assert_msg(now_ms() - since <= IDLE_MAX_MS,
			      "%s: -t %s: %s: still open after %lld ms, want closed within %d",
			      st->name, IDLE_ARG, what, now_ms() - since, IDLE_MAX_MS);
		snprintf(bwhat, sizeof(bwhat), "busy client, request %d, while %s", ++asked, what);
		root_on(busy, REQ_ROOT, true, bwhat);
	}
	ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
		      "%s: -t %s: %s: want it closed, got %s%s%s", st->name, IDLE_ARG, what,
		      peer_event_str(ev), ev == PEER_DATA ? ": " : "",
		      ev == PEER_DATA ? harness_error() : "");
	took = now_ms() - since;
	ck_assert_msg(took >= IDLE_MIN_MS,
		      "%s: -t %s: %s was closed after %lld ms, before it had been idle for %s s",
		      st->name, IDLE_ARG, what, took, IDLE_ARG);
	printf("%s: -t %s: %s closed after %lld ms\n", st->name, IDLE_ARG, what, took);
	snprintf(bwhat, sizeof(bwhat), "busy client after %s was closed", what);
	root_on(busy, REQ_ROOT, true, bwhat);
	close(busy);
	close(idle);
}

START_TEST(idle_keep_alive_closed)
{
	long long start;
	int idle;

	start_step(_i, idle_args);
	idle = connect_or_fail();
	/* Timed from before the request: the server's idle clock starts later. */
	start = now_ms();
	root_on(idle, REQ_ROOT, true, "GET / before idling");
	closed_while_busy(idle, start, "an idle kept-alive connection");
}
END_TEST

START_TEST(stalled_half_head_closed)
{
	int stalled;
	long long start;

	start_step(_i, idle_args);
	/* Timed from before the connect: the server's idle clock starts at accept. */
	start = now_ms();
	stalled = connect_or_fail();
	send_or_fail(stalled, HALF_HEAD, strlen(HALF_HEAD), "half a head");
	closed_while_busy(stalled, start, "a client stalled in its head");
}
END_TEST

/* ---- tcase resets ----------------------------------------------------- */

/*
 * With -c 1 the reset client holds the only slot: a new connection served
 * afterwards proves the slot came back, which the fd count cannot see
 * (accepted sockets live in io_uring's fixed-file table, not in /proc).
 */
static void assert_recovers(int base, const char *what)
{
	char msg[160];
	int fd;

	assert_running();
	snprintf(msg, sizeof(msg), "a new connection after %s", what);
	fd = served_connection(SLOT_FREE_MS, msg);
	close(fd);
	assert_fds_back(base, msg);
}

/*
 * With the server's fds counted into *@base: @who, a served connection
 * that has just asked for /large with a small receive buffer, so that
 * the body stays in flight.  Returns it.
 */
static int asked_for_large(int *base, const char *who)
{
	int fd;

	*base = fd_baseline();
	fd = served_connection(SLOT_FREE_MS, who);
	small_rcvbuf(fd);
	send_or_fail(fd, REQ_LARGE, strlen(REQ_LARGE), "GET /large");
	return fd;
}

START_TEST(reset_mid_request)
{
	static const char *const args[] = { "-c", "1", NULL };
	int base, fd;

	start_step(_i, args);
	base = fd_baseline();
	/* Served once: it holds the slot, and its recv is armed again. */
	fd = served_connection(SLOT_FREE_MS, "the client that will reset");
	send_or_fail(fd, HALF_HEAD, strlen(HALF_HEAD), "half of a second request");
	sleep_ms(50);
	reset_or_fail(fd);
	assert_recovers(base, "a reset in the middle of a request");
}
END_TEST

/* One slot, and a /large still being sent when its client goes. */
static const char *const one_slot_large[] = { "-c", "1", "-l", RESET_LARGE_ARG, NULL };

START_TEST(reset_mid_response)
{
	int base, fd;

	start_step(_i, one_slot_large);
	fd = asked_for_large(&base, "the client that will reset");
	read_some(fd, READ_BEFORE_RESET, "the start of an 8 MiB /large");
	reset_or_fail(fd);
	assert_recovers(base, "a reset in the middle of an 8 MiB response");
}
END_TEST

START_TEST(close_without_reading)
{
	int base, fd;

	start_step(_i, one_slot_large);
	fd = asked_for_large(&base, "the client that will not read");
	/* Gone before the first byte of the body is read: the sends meet a RST. */
	close(fd);
	assert_recovers(base, "a client that closed without reading its 8 MiB");
}
END_TEST

/*
 * One wave of abusive clients at once, by thirds: reset in the middle of
 * a second request, reset in the middle of /large, close without reading
 * /large.  Their own answers are not checked: a client may be refused
 * while the previous wave's slots are still being freed.
 */
static int abuse_wave(int wave, int *reading)
{
	int fds[ABUSE_PER_WAVE], i, left, served = 0;
	long long deadline;
	struct http_response r;

	for (i = 0; i < ABUSE_PER_WAVE; i++) {
		fds[i] = tcp_connect(srv.port, IO_TIMEOUT_MS);
		ck_assert_msg(fds[i] >= 0, "%s: abusive client %d: %s", st->name,
			      wave * ABUSE_PER_WAVE + i, harness_error());
		small_rcvbuf(fds[i]);
		if (i % 3 == 0)
			send_all(fds[i], REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS);
		else
			send_all(fds[i], REQ_LARGE, strlen(REQ_LARGE), IO_TIMEOUT_MS);
	}
	/* The whole wave's reads share one bound, whatever the server does. */
	deadline = now_ms() + ABUSE_WAVE_MS;
	for (i = 0; i < ABUSE_PER_WAVE; i++) {
		left = (int)(deadline - now_ms());
		if (left < 1)
			left = 1;
		if (i % 3 != 2)
			(*reading)++;
		if (i % 3 == 0) {
			memset(&r, 0, sizeof(r));
			if (!http_read_responses(fds[i], 1, left, &r) && r.status == 200)
				served++;
			http_response_free(&r);
			send_all(fds[i], HALF_HEAD, strlen(HALF_HEAD), left);
		} else if (i % 3 == 1) {
			if (drain(fds[i], READ_BEFORE_RESET, left) >= READ_BEFORE_RESET)
				served++;
		} else {
			close(fds[i]);
			fds[i] = -1;
		}
	}
	sleep_ms(20);
	for (i = 0; i < ABUSE_PER_WAVE; i++)
		if (fds[i] >= 0)
			tcp_abort(fds[i]);
	return served;
}

START_TEST(abusive_clients_leak_no_slot)
{
	static const char *const args[] = { "-c", ABUSE_SLOTS_ARG, "-l", RESET_LARGE_ARG,
					     NULL };
	int base, wave, served = 0, reading = 0, i;
	int held[ABUSE_SLOTS];
	char what[96];

	start_step(_i, args);
	base = fd_baseline();
	for (wave = 0; wave < ABUSE_WAVES; wave++) {
		served += abuse_wave(wave, &reading);
		sleep_ms(100);
	}
	printf("%s: -c %s: %d of the %d abusive clients that read got an answer before going away\n",
	       st->name, ABUSE_SLOTS_ARG, served, reading);
	assert_running();
	/* A slot leaked by any of them would leave room for fewer than 32. */
	for (i = 0; i < ABUSE_SLOTS; i++) {
		snprintf(what, sizeof(what), "connection %d of %d held after %d abusive clients",
			 i + 1, ABUSE_SLOTS, ABUSE_WAVES * ABUSE_PER_WAVE);
		held[i] = served_connection(SLOT_FREE_MS, what);
	}
	for (i = 0; i < ABUSE_SLOTS; i++)
		close(held[i]);
	assert_fds_back(base, "after the abusive clients");
}
END_TEST

/* ---- tcase counters --------------------------------------------------- */

START_TEST(exit_line_counts_enobufs)
{
	const unsigned long sent = RING_COUNT_CONNS * RING_COUNT_ROUNDS * RING_BATCH;
	int fds[RING_COUNT_CONNS], i;
	struct ring_counts c;
	size_t len;

	/* 6000 bytes at once on each: the one 4 KiB buffer cannot take them. */
	len = ring_load(_i, RING_COUNT_BUFFERS, fds, RING_COUNT_CONNS, RING_COUNT_ROUNDS);
	for (i = 0; i < RING_COUNT_CONNS; i++)
		close(fds[i]);
	ring_exit_line(&c, "SIGINT after -B 1 ran dry");
	ck_assert_msg(c.connections == RING_COUNT_CONNS,
		      "%s: -B %s: the exit line counts %lu connections, %d were made",
		      st->name, RING_COUNT_BUFFERS, c.connections, RING_COUNT_CONNS);
	ck_assert_msg(c.requests == sent,
		      "%s: -B %s: the exit line counts %lu requests, %lu were sent and answered",
		      st->name, RING_COUNT_BUFFERS, c.requests, sent);
	ck_assert_msg(c.enobufs > 0,
		      "%s: -B %s: %d connections x %d rounds of %zu bytes at once, and the exit line counts 0 recvs re-armed after ENOBUFS",
		      st->name, RING_COUNT_BUFFERS, RING_COUNT_CONNS, RING_COUNT_ROUNDS, len);
	ck_assert_msg(c.rearms >= c.enobufs,
		      "%s: -B %s: the exit line counts %lu re-arms, fewer than the %lu after ENOBUFS among them",
		      st->name, RING_COUNT_BUFFERS, c.rearms, c.enobufs);
}
END_TEST

START_TEST(exit_line_counts_sequential)
{
	const char *what = "GET / one after another on one connection";
	struct ring_counts c;
	char w[96];
	int fd, i;

	start_step(_i, NULL);
	fd = connect_or_fail();
	for (i = 0; i < RING_COUNT_SEQUENTIAL; i++) {
		snprintf(w, sizeof(w), "%s, %d of %d", what, i + 1, RING_COUNT_SEQUENTIAL);
		root_on(fd, REQ_ROOT, true, w);
	}
	close(fd);
	ring_exit_line(&c, "SIGINT after sequential requests");
	ck_assert_msg(c.connections == 1 && c.requests == RING_COUNT_SEQUENTIAL,
		      "%s: the exit line counts %lu connections, %lu requests; want 1 connection, %d requests",
		      st->name, c.connections, c.requests, RING_COUNT_SEQUENTIAL);
	ck_assert_msg(c.enobufs == 0,
		      "%s: %d requests in turn with the default ring, and the exit line counts %lu recvs re-armed after ENOBUFS, want 0",
		      st->name, RING_COUNT_SEQUENTIAL, c.enobufs);
}
END_TEST

/* ---- tcase zerocopy --------------------------------------------------- */

START_TEST(zc_large_exact_sizes)
{
	/* Around the server's 16 KiB zero-copy threshold, and far past it. */
	static const char *const sizes[] = { "1", "4096", "16384", "1048576", "16777216" };
	const char *args[] = { "-l", NULL, NULL };
	struct http_response r;
	char what[96];
	size_t i;
	int fd;

	use_step(_i);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		args[1] = sizes[i];
		start_server(args);
		if (zero_copy_unavailable())
			return;
		snprintf(what, sizeof(what), "GET /large with -l %s", sizes[i]);
		fd = connect_or_fail();
		request_on(fd, REQ_LARGE, &r, what);
		assert_large_conn(&r, strtoul(sizes[i], NULL, 10), true, what);
		http_response_free(&r);
		close(fd);
		stop_server(SIGINT, what);
		server_cleanup(&srv);
	}
}
END_TEST

START_TEST(zc_concurrent_large)
{
	struct http_response r[ZC_CONCURRENT];
	char what[64];
	int got, i;

	start_step(_i, NULL);
	if (zero_copy_unavailable())
		return;
	memset(r, 0, sizeof(r));
	got = http_many(srv.port, REQ_LARGE, ZC_CONCURRENT, READ_BY_LENGTH, 20000, r);
	ck_assert_msg(got == ZC_CONCURRENT, "%s: %d of %d concurrent 1 MiB /large answered: %s",
		      st->name, got, ZC_CONCURRENT, harness_error());
	for (i = 0; i < ZC_CONCURRENT; i++) {
		snprintf(what, sizeof(what), "concurrent /large %d of %d", i + 1, ZC_CONCURRENT);
		assert_large_conn(&r[i], DEFAULT_LARGE, true, what);
		http_response_free(&r[i]);
	}
}
END_TEST

START_TEST(zc_partial_read_then_close)
{
	/* -c 1: the slot comes back only once every notification is in. */
	static const char *const args[] = { "-c", "1", "-l", "16777216", NULL };
	struct http_response r;
	int base, fd;

	start_step(_i, args);
	if (zero_copy_unavailable())
		return;
	fd = asked_for_large(&base, "the client that reads part of 16 MiB");
	read_some(fd, DEFAULT_LARGE, "the first MiB of a 16 MiB /large");
	close(fd);
	assert_recovers(base, "a client that read 1 of 16 MiB and closed");
	/* The registered body is intact for the next reader. */
	fd = served_connection(SLOT_FREE_MS, "GET /large after the partial reader");
	request_on(fd, REQ_LARGE, &r, "GET /large of 16 MiB after the partial reader");
	assert_large_conn(&r, 16777216, true, "GET /large of 16 MiB after the partial reader");
	http_response_free(&r);
	close(fd);
}
END_TEST

/* Copies are reported from Linux 6.2 (IORING_SEND_ZC_REPORT_USAGE). */
static bool kernel_reports_copies(char *release, size_t size)
{
	struct utsname u;
	int major, minor;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return true;
	snprintf(release, size, "%s", u.release);
	return major > 6 || (major == 6 && minor >= 2);
}

START_TEST(zc_exit_report)
{
	const int sends = ZC_REPORT_KEPT + ZC_REPORT_CLOSED;
	unsigned long zc = 0, copied = 0;
	struct http_response r;
	char out[4096], release[128] = "";
	const char *line;
	char what[64];
	int fd, i;

	start_step(_i, NULL);
	if (zero_copy_unavailable())
		return;
	if (!kernel_reports_copies(release, sizeof(release))) {
		printf("SKIP: %s: kernel %s cannot report copies (needs 6.2)\n", st->name,
		       release);
		return;
	}
	/*
	 * A send's notification comes when the kernel frees the pages, which
	 * may be after the client has read every byte; the server counts it
	 * then, and closes a connection only once all of its notifications
	 * are in.  So every connection ends with the server's close, and
	 * SIGINT comes after the last: nothing is still in flight at exit.
	 */
	fd = connect_or_fail();
	for (i = 0; i < ZC_REPORT_KEPT; i++) {
		snprintf(what, sizeof(what), "kept-alive GET /large %d", i + 1);
		request_on(fd, REQ_LARGE, &r, what);
		assert_large_conn(&r, DEFAULT_LARGE, true, what);
		http_response_free(&r);
	}
	root_on(fd, REQ_ROOT_CLOSE, false, "GET / with Connection: close after 4 /large");
	close(fd);
	for (i = 0; i < ZC_REPORT_CLOSED; i++) {
		snprintf(what, sizeof(what), "GET /large %d with Connection: close", i + 1);
		fd = connect_or_fail();
		request_on(fd, REQ_LARGE_CLOSE, &r, what);
		assert_large_conn(&r, DEFAULT_LARGE, false, what);
		http_response_free(&r);
		assert_closes(fd, CLOSE_AFTER_MS, what);
		close(fd);
	}
	stop_server(SIGINT, "SIGINT after zero-copy sends");
	server_stdout(&srv, out, sizeof(out));
	line = strstr(out, "zero-copy sends: ");
	ck_assert_msg(line && sscanf(line, "zero-copy sends: %lu without a copy, %lu copied by the kernel",
				     &zc, &copied) == 2,
		      "%s: no \"zero-copy sends: N without a copy, M copied by the kernel\" line at exit; stdout: %s",
		      st->name, out);
	printf("%s: %d large sends; at exit: %.*s\n", st->name, sends,
	       (int)strcspn(line, "\n"), line);
	/* Loopback hands the pages to the receiver's queue: the kernel must copy. */
	ck_assert_msg(copied > 0, "%s: %lu sends copied over loopback, want > 0", st->name,
		      copied);
	/* A short send is sent on, zero-copy again: at least one each. */
	ck_assert_msg(zc + copied >= (unsigned long)sends,
		      "%s: %lu + %lu zero-copy sends reported, %d large responses sent",
		      st->name, zc, copied, sends);
}
END_TEST

/* ---- tcase fairness --------------------------------------------------- */

/*
 * Clients that pipeline and never read: each asks for /large
 * HOG_REQUESTS times in one burst (about 800 KB) with a receive buffer
 * too small for one answer, so everything it sends backs up in the
 * server.  With a ring of FAIR_BUFFERS, they must not take it from
 * everybody else.
 */
#define FAIR_BUFFERS "16"
#define HOGS 4
#define HOG_REQUESTS 20000
#define HOG_RCVBUF 4096
#define HOG_SEND_MS 1000	/* write what the server takes in this long */
#define HOG_IDLE_ARG "5"	/* the sweep would end the hogs after 5 s */
#define SERVED_WITHIN_MS 500	/* a GET / beside them */
#define HOG_CPU_WINDOW_MS 1000
#define HOG_CPU_MAX_S 0.3	/* 30% of a core over that window */
#define HOG_REARMS_MAX 1000	/* a loop of re-arms makes millions */

/* The slow pipeliner: PIPE_REQUESTS of / and /large in turn. */
#define PIPE_REQUESTS 2000
#define PIPE_LARGE_ARG "16384"	/* big enough to back the responses up */
#define PIPE_LARGE 16384
#define PIPE_REQ_BYTES 300	/* 600 KB of requests in all */
#define PIPE_STALL_MS 500	/* it sends for this long before it reads */
#define PIPE_READ_CHUNK 65536
#define PIPE_MS 20000

/* Every byte of @len at @buf, as fast as the server takes them, for @ms. */
static size_t send_for(int fd, const char *buf, size_t len, int ms)
{
	long long deadline = now_ms() + ms;
	size_t off = 0;
	ssize_t k;

	while (off < len && now_ms() < deadline) {
		k = send(fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k > 0)
			off += (size_t)k;
		else if (k < 0 && errno != EAGAIN && errno != EINTR)
			break;
		else
			sleep_ms(5);
	}
	return off;
}

/* @n copies of @req, malloc'd; *@len gets their size. */
static char *repeated(const char *req, int n, size_t *len)
{
	size_t one = strlen(req);
	char *buf = malloc(one * n);
	int i;

	ck_assert_msg(buf != NULL, "%s: out of memory", st->name);
	for (i = 0; i < n; i++)
		memcpy(buf + one * i, req, one);
	*len = one * n;
	return buf;
}

/* A new connection's GET / answered within @ms: returns the milliseconds. */
static long long root_latency(int ms, const char *what)
{
	struct http_response r;
	long long start = now_ms();
	int fd = connect_or_fail();

	memset(&r, 0, sizeof(r));
	send_or_fail(fd, REQ_ROOT, strlen(REQ_ROOT), what);
	ck_assert_msg(http_read_responses(fd, 1, ms, &r) == 0,
		      "%s: %s: GET / not answered within %d ms: %s", st->name, what, ms,
		      harness_error());
	assert_root(&r, true, what);
	http_response_free(&r);
	close(fd);
	return now_ms() - start;
}

START_TEST(pipelining_hogs_do_not_starve)
{
	static const char *const args[] = { "-B", FAIR_BUFFERS, "-t", HOG_IDLE_ARG, NULL };
	const char *what = "GET / beside clients that pipeline and never read";
	int hogs[HOGS], i, size = HOG_RCVBUF;
	struct ring_counts c;
	long long lat, start;
	double cpu0, cpu1;
	size_t len, sent;
	char *burst;

	start_step(_i, args);
	burst = repeated(REQ_LARGE, HOG_REQUESTS, &len);
	for (i = 0; i < HOGS; i++) {
		hogs[i] = connect_or_fail();
		ck_assert_int_eq(setsockopt(hogs[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
	}
	for (i = 0; i < HOGS; i++) {
		sent = send_for(hogs[i], burst, len, HOG_SEND_MS / HOGS);
		note("hog %d: %zu of %zu bytes taken", i, sent, len);
	}
	free(burst);
	start = now_ms();
	cpu0 = proc_cpu_seconds(srv.pid);
	ck_assert_msg(cpu0 >= 0, "%s: %s", st->name, harness_error());
	lat = root_latency(SERVED_WITHIN_MS, what);
	sleep_ms(HOG_CPU_WINDOW_MS - (now_ms() - start));
	cpu1 = proc_cpu_seconds(srv.pid);
	ck_assert_msg(cpu1 >= 0, "%s: %s", st->name, harness_error());
	printf("%s: -B %s, %d hogs: GET / answered in %lld ms; server CPU %.2f s in %lld ms\n",
	       st->name, FAIR_BUFFERS, HOGS, lat, cpu1 - cpu0, now_ms() - start);
	ck_assert_msg(cpu1 - cpu0 <= HOG_CPU_MAX_S,
		      "%s: -B %s, %d clients pipelining and not reading: the server used %.2f s of CPU in %lld ms, want at most %.2f",
		      st->name, FAIR_BUFFERS, HOGS, cpu1 - cpu0, now_ms() - start, HOG_CPU_MAX_S);
	for (i = 0; i < HOGS; i++)
		close(hogs[i]);
	ring_exit_line(&c, "SIGINT after the hogs");
	ck_assert_msg(c.connections == HOGS + 1 && c.requests >= HOGS + 1,
		      "%s: the exit line counts %lu connections, %lu requests; want %d, at least %d",
		      st->name, c.connections, c.requests, HOGS + 1, HOGS + 1);
	ck_assert_msg(c.rearms <= HOG_REARMS_MAX,
		      "%s: the exit line counts %lu re-arms (%lu after ENOBUFS) for %d connections, want at most %d",
		      st->name, c.rearms, c.enobufs, HOGS + 1, HOG_REARMS_MAX);
}
END_TEST

/*
 * A client that pipelines PIPE_REQUESTS at once and reads slowly (nothing
 * for PIPE_STALL_MS, then a chunk a millisecond): another client is served
 * meanwhile, and every response comes, in order.
 */
START_TEST(slow_pipeliner_gets_every_response)
{
	static const char *const args[] = { "-B", FAIR_BUFFERS, "-l", PIPE_LARGE_ARG, NULL };
	char reqs[2 * PIPE_REQ_BYTES + 1];
	long long deadline, lat;
	size_t len, off = 0, have = 0;
	int fd, got = 0, i, n;
	struct ring_counts c;
	struct http_response r;
	char what[96], *out, *q;
	char *burst;
	ssize_t k;
	long span;

	start_step(_i, args);
	/* GET / and GET /large, padded to PIPE_REQ_BYTES as a browser's heads are. */
	for (i = 0; i < 2; i++) {
		q = reqs + i * PIPE_REQ_BYTES;
		n = snprintf(q, PIPE_REQ_BYTES, "GET %s HTTP/1.1\r\n" HOST_HDR "X-Pad: ",
			     i ? "/large" : "/");
		memset(q + n, 'p', PIPE_REQ_BYTES - n - 4);
		memcpy(q + PIPE_REQ_BYTES - 4, "\r\n\r\n", 4);
	}
	reqs[2 * PIPE_REQ_BYTES] = '\0';
	burst = repeated(reqs, PIPE_REQUESTS / 2, &len);
	out = malloc(1 << 20);	/* more than PIPE_READ_CHUNK and a response */
	ck_assert_msg(out != NULL, "%s: out of memory", st->name);
	fd = connect_or_fail();
	small_rcvbuf(fd);
	off = send_for(fd, burst, len, PIPE_STALL_MS);
	lat = root_latency(SERVED_WITHIN_MS, "GET / beside a slow pipeliner");
	deadline = now_ms() + PIPE_MS;
	while (got < PIPE_REQUESTS) {
		ck_assert_msg(now_ms() < deadline,
			      "%s: %d of %d pipelined responses within %d ms (%zu of %zu request bytes taken)",
			      st->name, got, PIPE_REQUESTS, PIPE_MS, off, len);
		if (off < len) {
			k = send(fd, burst + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			ck_assert_msg(k > 0 || errno == EAGAIN || errno == EINTR,
				      "%s: pipelining: send: %s", st->name, strerror(errno));
			if (k > 0)
				off += (size_t)k;
		}
		k = recv(fd, out + have, PIPE_READ_CHUNK < (1 << 20) - have ?
			 PIPE_READ_CHUNK : (1 << 20) - have, MSG_DONTWAIT);
		ck_assert_msg(k != 0, "%s: the server closed after %d of %d pipelined responses",
			      st->name, got, PIPE_REQUESTS);
		ck_assert_msg(k > 0 || errno == EAGAIN || errno == EINTR,
			      "%s: pipelining: recv: %s", st->name, strerror(errno));
		if (k > 0)
			have += (size_t)k;
		while (have) {
			memset(&r, 0, sizeof(r));
			span = http_take_response(out, have, &r);
			ck_assert_msg(span >= 0, "%s: response %d cannot be delimited", st->name,
				      got + 1);
			if (!span)
				break;
			snprintf(what, sizeof(what), "pipelined response %d (GET %s)", got + 1,
				 got % 2 ? "/large" : "/");
			if (got % 2)
				assert_large_conn(&r, PIPE_LARGE, true, what);
			else
				assert_root(&r, true, what);
			http_response_free(&r);
			memmove(out, out + span, have - span);
			have -= (size_t)span;
			got++;
		}
		sleep_ms(1);
	}
	printf("%s: -B %s: %d pipelined responses in order; GET / beside them in %lld ms\n",
	       st->name, FAIR_BUFFERS, got, lat);
	free(burst);
	free(out);
	close(fd);
	/* Past its share, its bytes were copied out of the ring: that path is covered. */
	ring_exit_line(&c, "SIGINT after the slow pipeliner");
	ck_assert_msg(c.spilled > 0,
		      "%s: -B %s: %zu bytes pipelined at once, and the exit line counts 0 bytes spilled past the connection's share",
		      st->name, FAIR_BUFFERS, len);
}
END_TEST

/* ---- tcase progress --------------------------------------------------- */

/* -t 2 and 8 MiB read at about 2 MB/s: 4 s, twice -t, always moving. */
#define SLOW_IDLE_ARG "2"
#define SLOW_LARGE_ARG "8388608"
#define SLOW_LARGE 8388608
#define SLOW_CHUNK 65536
#define SLOW_DELAY_US 30000
#define SLOW_MS 20000

START_TEST(slow_reader_of_large_not_cut)
{
	static const char *const args[] = { "-t", SLOW_IDLE_ARG, "-l", SLOW_LARGE_ARG, NULL };
	struct http_response r;
	long long start;
	int fd;

	start_step(_i, args);
	fd = connect_or_fail();
	small_rcvbuf(fd);
	send_or_fail(fd, REQ_LARGE, strlen(REQ_LARGE), "GET /large");
	memset(&r, 0, sizeof(r));
	start = now_ms();
	ck_assert_msg(http_read_slow(fd, READ_BY_LENGTH, SLOW_MS, SLOW_CHUNK, SLOW_DELAY_US,
				     &r) == 0,
		      "%s: -t %s: 8 MiB /large read at about 2 MB/s: %s", st->name,
		      SLOW_IDLE_ARG, harness_error());
	printf("%s: -t %s: 8 MiB /large read slowly in %lld ms, %zu body bytes%s\n", st->name,
	       SLOW_IDLE_ARG, now_ms() - start, r.body_len, r.eof ? " (closed)" : "");
	assert_large_conn(&r, SLOW_LARGE, true, "8 MiB /large read slowly with -t 2");
	http_response_free(&r);
	close(fd);
}
END_TEST

/*
 * -t 1 and -c 1: a client reads /large steadily for STEADY_MS, then
 * stops reading.  It is not cut while it reads; once it stops, its
 * connection ends, and the one slot comes back, within STOPPED_MAX_MS.
 */
#define STEADY_IDLE_ARG "1"
#define STEADY_MS 3000
#define STOPPED_MAX_MS 4000

START_TEST(stopped_reader_still_ended)
{
	static const char *const args[] = { "-t", STEADY_IDLE_ARG, "-c", "1", "-l",
					    "67108864", NULL };
	char buf[SLOW_CHUNK];
	enum peer_event ev;
	long long start, stopped;
	size_t total = 0, n;
	int fd, other;

	start_step(_i, args);
	fd = connect_or_fail();
	small_rcvbuf(fd);
	send_or_fail(fd, REQ_LARGE, strlen(REQ_LARGE), "GET /large of 64 MiB");
	start = now_ms();
	while (now_ms() - start < STEADY_MS) {
		ev = recv_event(fd, buf, sizeof(buf), &n);
		ck_assert_msg(ev == PEER_DATA || ev == PEER_SILENT,
			      "%s: -t %s: /large ended after %zu bytes and %lld ms of steady reading: %s",
			      st->name, STEADY_IDLE_ARG, total, now_ms() - start,
			      peer_event_str(ev));
		if (ev == PEER_DATA)
			total += n;
		sleep_ms(SLOW_DELAY_US / 1000);
	}
	/*
	 * Bytes already in our socket buffer would hide a cut for seconds:
	 * the one slot must still be taken, so another client is refused.
	 */
	other = connect_or_fail();
	(void)send(other, REQ_ROOT, strlen(REQ_ROOT), MSG_NOSIGNAL);
	ev = peer_wait(other, REFUSE_WITHIN_MS);
	ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
		      "%s: -t %s -c 1: after %d ms of steady reading another client got %s: the server had ended the reader's connection",
		      st->name, STEADY_IDLE_ARG, STEADY_MS, peer_event_str(ev));
	close(other);
	stopped = now_ms();
	/* Still open and not read: only the server can end it. */
	n = (size_t)served_connection(STOPPED_MAX_MS, "the one slot, after its client stopped reading");
	printf("%s: -t %s: %zu bytes read in %d ms, then the slot came back %lld ms after the client stopped\n",
	       st->name, STEADY_IDLE_ARG, total, STEADY_MS, now_ms() - stopped);
	close((int)n);
	close(fd);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

Suite *keepalive_suite(int idx, const char *root)
{
	Suite *s = step_suite_create(idx, "keepalive", root);

	add_tests(new_tcase(s, "keepalive", 30), idx,
		  TESTS(thousand_requests_one_connection, pipelined_answered_in_order,
			large_then_root, large_and_root_pipelined, http10_closes,
			http10_keep_alive_stays_open, connection_close_ends_kept_connection,
			not_found_closes_kept_connection, request_with_body_closes,
			content_length_zero_keeps_alive, split_requests_on_kept_connection,
			request_straddles_writes));
	add_tests(new_tcase(s, "limits", 30), idx,
		  TESTS(buffer_ring_exhaustion, fixed_file_table_full, idle_keep_alive_closed,
			stalled_half_head_closed));
	add_tests(new_tcase(s, "resets", 30), idx,
		  TESTS(reset_mid_request, reset_mid_response, close_without_reading,
			abusive_clients_leak_no_slot));
	add_tests(new_tcase(s, "fairness", 30), idx,
		  TESTS(pipelining_hogs_do_not_starve, slow_pipeliner_gets_every_response));
	add_tests(new_tcase(s, "progress", 30), idx,
		  TESTS(slow_reader_of_large_not_cut, stopped_reader_still_ended));
	add_tests(new_tcase(s, "counters", 30), idx,
		  TESTS(exit_line_counts_enobufs, exit_line_counts_sequential));
	if (steps[idx].zero_copy)
		add_tests(new_tcase(s, "zerocopy", 60), idx,
			  TESTS(zc_large_exact_sizes, zc_concurrent_large,
				zc_partial_read_then_close, zc_exit_report));
	return s;
}
