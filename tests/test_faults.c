// SPDX-License-Identifier: MIT
/*
 * test_faults.c - black-box tests of what every step's server does when
 * clients misbehave or a resource runs out: clients that stall in the
 * middle of a head (slowloris), reset or half-close their connection, or
 * leave without reading; garbage, floods and oversized heads; 500 clients
 * at once; a server out of file descriptors; and SIGINT while clients are
 * busy.  After each case the server must still run, be back within a
 * second to the fds and fixed-file slots it held before, and answer GET /
 * as always; with SANITIZE=1 it must also have reported nothing.
 *
 * One Check suite, "<step>/faults", per row of steps[]; the row says what
 * a step cannot do (step01 serves one client at a time), what its CPU is
 * compared with (sq_poll) and how to exhaust its fds (fault_nofile).
 *
 * tcases (for CK_RUN_CASE): slowloris, resets, garbage, load, exhaustion,
 * shutdown.  The timing and CPU figures are printed on every run; with
 * CK_VERBOSITY=verbose every case also says what the server answered.
 * The rest of the environment is the one test_steps.c describes; STEPS
 * selects these suites together with their step's.
 *
 * The fixture is fixture.h's, as for every suite: each test is its own
 * process with its own server on an ephemeral port of 127.0.0.1, every
 * load is bounded in count and time, and the checked teardown kills
 * whatever is left.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "test_faults.h"

/* Closing finishes asynchronously (io_uring): fds may take this long. */
#define FDS_BACK_MS 1000

/* slowloris */
#define STALLED_CLIENTS 20
#define SERVED_WITHIN_MS 1000
/*
 * A one-at-a-time server (step01) reads a stalled client until its receive
 * timeout, 2 s, before it takes the next: two of them hold it for 4 s.
 */
#define STALLED_ONE_AT_A_TIME 2
#define RECV_TIMEOUT_MS 2000
#define TIMEOUT_SLACK_MS 1500

/* resets */
#define LARGE_ARG "8388608"	/* 8 MiB: still being sent when the client goes */
#define LARGE_BYTES 8388608
#define READ_BEFORE_RESET 65536
#define RESET_CLIENTS 10
#define LARGE_CLIENTS 4

/* garbage */
#define END_WITHIN_MS 3000	/* a refusal must end the connection by then */
#define RANDOM_CLIENTS 16
#define RANDOM_BYTES 4096
#define RANDOM_SEED 0x2545f491u
#define FLOOD_BYTES (1024 * 1024)
#define LONG_LINE_BYTES (100 * 1024)
#define MANY_HEADERS 200

/* load: opened, then sent on, then read, each phase for all at once */
#define LOAD_CLIENTS 500
#define LOAD_MS 10000
#define LOAD_MS_ONE_AT_A_TIME 20000	/* taken from the backlog one by one */

/* exhaustion */
#define FAULT_NOFILE 32
/*
 * The fixed-file steps register a table of -c slots, which the kernel
 * refuses (EMFILE) when it is larger than RLIMIT_NOFILE: 16 fits under 32.
 */
#define FIXED_SLOTS_ARG "16"
#define HELD_CLIENTS 40		/* ~27 fit under 32 fds, the rest wait or are refused */
#define SETTLE_MS 300		/* for the server to take what it can */
#define CPU_WINDOW_MS 1000
#define CPU_LIMIT_PCT 20.0	/* of a core, while accept fails */
#define CPU_MARGIN_PCT 20.0	/* over the reference of a sq_poll step */
#define PACE_MS 250		/* a fair pace for retrying a failing accept */
#define RECOVER_MS 1500

/* shutdown */
#define BUSY_CLIENTS 20
#define ENDED_WITHIN_MS 1000
#define BUSY_MAX_MS 8000	/* the load process never outlives this */

/* ---- helpers ---------------------------------------------------------- */

/* GET / with Connection: close, answered byte for byte as always. */
static void get_root(const char *what)
{
	struct http_response r = { 0 };
	int ret;

	ret = http_exchange(srv.port, REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), READ_TO_EOF,
			    &r);
	ck_assert_msg(ret == 0, "%s: %s: GET /: %s", st->name, what, harness_error());
	assert_exact(&r, canonical_root, what);
	http_response_free(&r);
}

/*
 * What the server holds open: fds, and the slots of its fixed-file table,
 * where the keep-alive steps put accepted sockets without an fd.
 */
struct held {
	int fds;
	int slots;
};

static void count_held(struct held *h)
{
	h->fds = proc_fd_count(srv.pid);
	ck_assert_msg(h->fds > 0, "%s: %s", st->name, harness_error());
	h->slots = proc_fixed_file_count(srv.pid);
	ck_assert_msg(h->slots >= 0, "%s: %s", st->name, harness_error());
}

/* What the server holds once it has served a few connections. */
static void baseline(struct held *base)
{
	int i;

	/* Anything opened lazily on the first request belongs to the baseline. */
	for (i = 0; i < 3; i++)
		get_root("warming up");
	sleep_ms(50);
	count_held(base);
}

/* start_step(), then what the server holds once it has served (baseline()). */
static void start_counted(int idx, const char *const *args, struct held *base)
{
	start_step(idx, args);
	baseline(base);
}

/*
 * What every case ends with: the server runs, has closed within
 * FDS_BACK_MS what the case made it open, and answers GET / as always.
 * (A fixed-file slot may be missed when the ring is busy, see
 * proc_fixed_file_count(); test_keepalive.c counts them by filling -c.)
 */
static void assert_recovered(const struct held *base, const char *what)
{
	long long start = now_ms(), deadline = start + FDS_BACK_MS, took;
	struct held now;
	char msg[192];

	assert_running();
	for (;;) {
		count_held(&now);
		if ((now.fds <= base->fds && now.slots <= base->slots) || now_ms() >= deadline)
			break;
		sleep_ms(20);
	}
	took = now_ms() - start;
	ck_assert_msg(now.fds <= base->fds && now.slots <= base->slots,
		      "%s: %s: %d open fds and %d fixed-file slots taken %d ms later, %d and %d before",
		      st->name, what, now.fds, now.slots, FDS_BACK_MS, base->fds, base->slots);
	snprintf(msg, sizeof(msg), "GET / %s", what);
	get_root(msg);
	note("%s: running, back to %d fds and %d fixed-file slots (%d and %d before) within %lld ms, GET / answered",
	     what, now.fds, now.slots, base->fds, base->slots, took);
}

/* How a connection ended that we fed without waiting; see feed(). */
struct outcome {
	char head[4096];	/* the first bytes the server sent */
	size_t got;		/* bytes received in all */
	size_t sent;		/* bytes of ours the socket took before the end */
	size_t len;		/* bytes we had to send */
	bool closed;		/* the server closed (FIN or RST) in time */
	bool reset;		/* ... with a RST */
	long ms;		/* how long it took */
};

/*
 * Send the @len bytes at @buf on @fd without waiting for the server to
 * read them, and read whatever it answers meanwhile, until it closes the
 * connection or @ms pass.  A server that stops reading and answers early
 * makes our send fail (EPIPE, ECONNRESET); what it sent stays readable.
 */
static void feed(int fd, const void *buf, size_t len, int ms, struct outcome *o)
{
	long long start = now_ms(), left;
	struct pollfd pfd = { .fd = fd };
	bool sending = len > 0;
	char in[65536];
	size_t keep;
	ssize_t k;
	int ret;

	memset(o, 0, sizeof(*o));
	o->len = len;
	while ((left = start + ms - now_ms()) > 0) {
		pfd.events = POLLIN | (sending ? POLLOUT : 0);
		pfd.revents = 0;
		ret = poll(&pfd, 1, (int)left);
		if (ret < 0 && errno == EINTR)
			continue;
		ck_assert_msg(ret >= 0, "poll: %s", strerror(errno));
		if (!ret)
			break;
		if (sending && (pfd.revents & POLLOUT)) {
			k = send(fd, (const char *)buf + o->sent, len - o->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0)
				o->sent += (size_t)k;
			else if (k < 0 && errno != EAGAIN && errno != EINTR)
				sending = false;
			if (o->sent == len)
				sending = false;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		k = recv(fd, in, sizeof(in), MSG_DONTWAIT);
		if (k > 0) {
			if (o->got < sizeof(o->head) - 1) {
				keep = sizeof(o->head) - 1 - o->got;
				memcpy(o->head + o->got, in, (size_t)k < keep ? (size_t)k : keep);
			}
			o->got += (size_t)k;
		} else if (!k || errno == ECONNRESET || errno == EPIPE) {
			o->closed = true;
			o->reset = k < 0;
			break;
		} else if (errno != EAGAIN && errno != EINTR) {
			ck_abort_msg("%s: recv: %s", st->name, strerror(errno));
		}
	}
	o->ms = (long)(now_ms() - start);
}

static const char *outcome_str(const struct outcome *o, int status, char *buf,
			       size_t size)
{
	char answer[32] = "nothing";

	if (status > 0)
		snprintf(answer, sizeof(answer), "%d", status);
	snprintf(buf, size, "answered %s, %s after %ld ms, having taken %zu of %zu bytes",
		 answer, !o->closed ? "still open" : o->reset ? "reset" : "closed", o->ms,
		 o->sent, o->len);
	return buf;
}

/*
 * After feed(): the server must have closed the connection, silently or
 * after exactly one complete response with status @status or @alt (0 for
 * none).  @silent_ok says whether a close without a response will do.
 * Returns the status, 0 for a silent close.
 */
static int assert_refused(const struct outcome *o, int status, int alt, bool silent_ok,
			  const char *what)
{
	size_t have = o->got < sizeof(o->head) - 1 ? o->got : sizeof(o->head) - 1;
	struct http_response r = { 0 };
	char q[256], line[128];
	int got;
	long used;

	ck_assert_msg(o->closed, "%s: %s: still open after %ld ms, %zu of %zu bytes taken, %zu received: %s",
		      st->name, what, o->ms, o->sent, o->len, o->got,
		      quote_bytes(o->head, have < 120 ? have : 120, q, sizeof(q)));
	if (!o->got) {
		ck_assert_msg(silent_ok, "%s: %s: closed after %ld ms without a response, want %d",
			      st->name, what, o->ms, status);
		return 0;
	}
	used = http_take_response(o->head, have, &r);
	ck_assert_msg(used > 0 && (size_t)used == o->got,
		      "%s: %s: want one complete response, then the close; got %zu bytes: %s",
		      st->name, what, o->got,
		      quote_bytes(o->head, have < 200 ? have : 200, q, sizeof(q)));
	got = r.status;
	ck_assert_msg(got == status || (alt && got == alt),
		      "%s: %s: status line \"%s\", want %d%s", st->name, what,
		      http_status_line(&r, line, sizeof(line)), status,
		      alt ? " (or the alternative)" : "");
	http_response_free(&r);
	return got;
}

/* Connect, feed @len bytes, and expect a refusal as assert_refused() does. */
static int refused(const void *buf, size_t len, int status, int alt, bool silent_ok,
		   const char *what)
{
	struct outcome o;
	char desc[160];
	int fd, got;

	fd = connect_or_fail();
	feed(fd, buf, len, END_WITHIN_MS, &o);
	close(fd);
	got = assert_refused(&o, status, alt, silent_ok, what);
	note("%s: %s", what, outcome_str(&o, got, desc, sizeof(desc)));
	return got;
}

/* CPU used by the server, in % of a core, over the next @ms. */
static double cpu_pct_over(int ms)
{
	double c0, c1;
	long long t0;

	c0 = proc_cpu_seconds(srv.pid);
	t0 = now_ms();
	ck_assert_msg(c0 >= 0, "%s: %s", st->name, harness_error());
	sleep_ms(ms);
	c1 = proc_cpu_seconds(srv.pid);
	ck_assert_msg(c1 >= 0, "%s: %s", st->name, harness_error());
	return (c1 - c0) * 100000.0 / (double)(now_ms() - t0);
}

/*
 * A new connection answered GET / exactly, retried for @ms while the
 * server may still refuse or not yet accept.  Returns how long it took.
 */
static long served_within(int ms, const char *what)
{
	const size_t req_len = strlen(REQ_ROOT_CLOSE);
	long long start = now_ms(), deadline = start + ms, left;
	struct http_response r;
	char last[256] = "";
	int fd, tries = 0;

	for (;;) {
		tries++;
		memset(&r, 0, sizeof(r));
		fd = tcp_connect(srv.port, IO_TIMEOUT_MS);
		left = deadline - now_ms();
		if (fd >= 0 && !send_all(fd, REQ_ROOT_CLOSE, req_len, IO_TIMEOUT_MS) &&
		    !http_read(fd, READ_TO_EOF, left > 50 ? (int)left : 50, &r) &&
		    r.raw_len == strlen(canonical_root) &&
		    !memcmp(r.raw, canonical_root, r.raw_len)) {
			http_response_free(&r);
			close(fd);
			return (long)(now_ms() - start);
		}
		if (r.raw_len)
			quote_bytes(r.raw, r.raw_len, last, sizeof(last));
		else
			snprintf(last, sizeof(last), "%s", harness_error());
		http_response_free(&r);
		if (fd >= 0)
			close(fd);
		if (now_ms() >= deadline)
			ck_abort_msg("%s: %s: no GET / answered within %d ms (%d tries); last: %s",
				     st->name, what, ms, tries, last);
		sleep_ms(20);
	}
}

/*
 * @n new connections into @fds, each having sent @req; with @small
 * receive buffers (small_rcvbuf()) when a response must stay in flight.
 */
static void clients_sent(int *fds, int n, const char *req, bool small, const char *what)
{
	int i;

	for (i = 0; i < n; i++) {
		fds[i] = connect_or_fail();
		if (small)
			small_rcvbuf(fds[i]);
		send_or_fail(fds[i], req, strlen(req), what);
	}
}

/* ---- tcase slowloris -------------------------------------------------- */

START_TEST(slowloris)
{
	struct held base;
	int stalled[STALLED_CLIENTS], count, limit, fd, i, ret;
	struct http_response r = { 0 };
	enum peer_event ev;
	long long start;
	long took;

	use_step(_i);
	count = st->concurrent ? STALLED_CLIENTS : STALLED_ONE_AT_A_TIME;
	limit = st->concurrent ? SERVED_WITHIN_MS :
				 count * RECV_TIMEOUT_MS + TIMEOUT_SLACK_MS;
	start_server(NULL);
	baseline(&base);
	clients_sent(stalled, count, HALF_HEAD, false, "half a head");
	/* Let the server read the half heads it can before the normal client. */
	sleep_ms(50);
	start = now_ms();
	fd = connect_or_fail();
	send_or_fail(fd, REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), "GET / behind stalled clients");
	ret = http_read(fd, READ_TO_EOF, limit, &r);
	took = (long)(now_ms() - start);
	close(fd);
	ck_assert_msg(ret == 0, "%s: GET / while %d clients stall mid-head: not answered within %d ms: %s",
		      st->name, count, limit, harness_error());
	assert_exact(&r, canonical_root, "GET / while clients stall mid-head");
	http_response_free(&r);
	ck_assert_msg(took <= limit, "%s: GET / while %d clients stall mid-head took %ld ms, want %d",
		      st->name, count, took, limit);
	printf("%s: slowloris: GET / answered after %ld ms while %d clients stalled mid-head%s\n",
	       st->name, took, count,
	       st->concurrent ? "" : " (one at a time: each held the server until its receive timeout)");
	for (i = 0; i < count; i++) {
		/* What let the normal client in: step01 gave up on them first. */
		if (!st->concurrent) {
			ev = peer_wait(stalled[i], 0);
			ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
				      "%s: stalled client %d: %s when the next client was served",
				      st->name, i, peer_event_str(ev));
		}
		close(stalled[i]);
	}
	assert_recovered(&base, "after the stalled clients left");
}
END_TEST

/* ---- tcase resets ----------------------------------------------------- */

/* /large still being sent when its client goes. */
static const char *const large_args[] = { "-l", LARGE_ARG, NULL };

START_TEST(reset_mid_request)
{
	struct held base;
	int fds[RESET_CLIENTS], i;

	start_counted(_i, NULL, &base);
	clients_sent(fds, RESET_CLIENTS, HALF_HEAD, false, "half a head");
	/* The server has read what it could: the resets hit armed recvs. */
	sleep_ms(50);
	for (i = 0; i < RESET_CLIENTS; i++)
		reset_or_fail(fds[i]);
	assert_recovered(&base, "after clients reset in the middle of their heads");
}
END_TEST

START_TEST(reset_mid_response)
{
	struct held base;
	int fds[LARGE_CLIENTS], i;
	char what[96];
	size_t got;

	start_counted(_i, large_args, &base);
	clients_sent(fds, LARGE_CLIENTS, REQ_LARGE, true, "GET /large of 8 MiB");
	/*
	 * In order: a one-at-a-time server starts the next body only once
	 * the previous client has gone.
	 */
	for (i = 0; i < LARGE_CLIENTS; i++) {
		snprintf(what, sizeof(what), "client %d: the start of an 8 MiB /large", i);
		got = drain(fds[i], READ_BEFORE_RESET, IO_TIMEOUT_MS);
		ck_assert_msg(got >= READ_BEFORE_RESET, "%s: %s: only %zu of %d bytes within %d ms",
			      st->name, what, got, READ_BEFORE_RESET, IO_TIMEOUT_MS);
		reset_or_fail(fds[i]);
	}
	assert_recovered(&base, "after clients reset in the middle of an 8 MiB body");
}
END_TEST

START_TEST(half_close_gets_response)
{
	struct held base;
	struct http_response r = { 0 };
	int fds[LARGE_CLIENTS], i, ret;
	enum peer_event ev;
	char what[96];
	size_t bad = 0;
	bool large;

	start_counted(_i, large_args, &base);
	/* No Connection: close: the FIN alone says that no request follows. */
	for (i = 0; i < LARGE_CLIENTS; i++) {
		large = i % 2;
		fds[i] = connect_or_fail();
		send_or_fail(fds[i], large ? REQ_LARGE : REQ_ROOT,
			     strlen(large ? REQ_LARGE : REQ_ROOT), "a request");
		ck_assert_int_eq(shutdown(fds[i], SHUT_WR), 0);
	}
	for (i = 0; i < LARGE_CLIENTS; i++) {
		large = i % 2;
		snprintf(what, sizeof(what), "client %d: GET %s, then shutdown(SHUT_WR)", i,
			 large ? "/large of 8 MiB" : "/");
		memset(&r, 0, sizeof(r));
		ret = http_read(fds[i], READ_BY_LENGTH, IO_TIMEOUT_MS, &r);
		ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
		ck_assert_msg(r.status == 200 && r.content_length >= 0 &&
			      r.body_len == (size_t)r.content_length,
			      "%s: %s: status %d, Content-Length %ld, %zu body bytes before %s",
			      st->name, what, r.status, r.content_length, r.body_len,
			      r.eof ? "the close" : "the time ran out");
		if (large)
			ck_assert_msg(r.body_len == LARGE_BYTES &&
				      large_body_ok(r.body, r.body_len, &bad),
				      "%s: %s: %zu body bytes, want %d intact (first bad byte %zu)",
				      st->name, what, r.body_len, LARGE_BYTES, bad);
		else
			ck_assert_msg(r.body_len == 17 && !memcmp(r.body, NICE_DAY, 17),
				      "%s: %s: wrong body", st->name, what);
		http_response_free(&r);
		/* Nothing more can come from this client: keeping it holds a slot for nothing. */
		ev = peer_wait(fds[i], FDS_BACK_MS);
		ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
			      "%s: %s: after the response, want the server to close within %d ms, got %s",
			      st->name, what, FDS_BACK_MS, peer_event_str(ev));
		close(fds[i]);
	}
	assert_recovered(&base, "after half-closed clients");
}
END_TEST

START_TEST(close_without_reading)
{
	struct held base;
	int fd, i;

	start_counted(_i, large_args, &base);
	/* Gone before a byte is read: the server's sends meet a RST. */
	for (i = 0; i < LARGE_CLIENTS; i++) {
		fd = connect_or_fail();
		small_rcvbuf(fd);
		send_or_fail(fd, i % 2 ? REQ_ROOT : REQ_LARGE,
			     strlen(i % 2 ? REQ_ROOT : REQ_LARGE), "a request");
		close(fd);
	}
	assert_recovered(&base, "after clients that closed without reading");
}
END_TEST

/* ---- tcase garbage ---------------------------------------------------- */

/* xorshift32: the same "random" bytes on every run, so a failure replays. */
static uint32_t next_random(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

START_TEST(random_bytes)
{
	struct held base;
	uint32_t seed = RANDOM_SEED;
	char buf[RANDOM_BYTES], what[96];
	int fd, i, j, silent = 0, answered = 0;
	long longest = 0;
	struct outcome o;

	start_counted(_i, NULL, &base);
	for (i = 0; i < RANDOM_CLIENTS; i++) {
		for (j = 0; j < RANDOM_BYTES; j++)
			buf[j] = (char)(next_random(&seed) >> 24);
		snprintf(what, sizeof(what), "client %d: %d random bytes (seed 0x%x)", i,
			 RANDOM_BYTES, RANDOM_SEED);
		fd = connect_or_fail();
		feed(fd, buf, sizeof(buf), END_WITHIN_MS, &o);
		close(fd);
		if (assert_refused(&o, 400, 431, true, what))
			answered++;
		else
			silent++;
		if (o.ms > longest)
			longest = o.ms;
	}
	note("%d x %d random bytes: %d answered 400 or 431 and closed, %d closed silently, all within %ld ms",
	     RANDOM_CLIENTS, RANDOM_BYTES, answered, silent, longest);
	assert_recovered(&base, "after random bytes");
}
END_TEST

START_TEST(nul_in_request_line)
{
#define NUL_CASE(s) { s "\r\n" HOST_HDR "\r\n", sizeof(s "\r\n" HOST_HDR "\r\n") - 1 }
	static const struct {
		const char *req;
		size_t len;
	} cases[] = {
		NUL_CASE("\0GET / HTTP/1.1"),
		NUL_CASE("GET\0/ HTTP/1.1"),
		NUL_CASE("GET /\0 HTTP/1.1"),
		NUL_CASE("GET /\0x HTTP/1.1"),
		NUL_CASE("GET / HTTP/1.1\0"),
		NUL_CASE("GET / HTTP/\0.1"),
	};
#undef NUL_CASE
	char what[160], q[96];
	size_t i;
	struct held base;

	start_counted(_i, NULL, &base);
	/* A NUL is never valid in a request line: 400, then the close. */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(what, sizeof(what), "request %s",
			 quote_bytes(cases[i].req, cases[i].len, q, sizeof(q)));
		refused(cases[i].req, cases[i].len, 400, 0, false, what);
	}
	assert_recovered(&base, "after NUL bytes in request lines");
}
END_TEST

START_TEST(header_flood)
{
	static const char head[] = "GET / HTTP/1.1\r\n" HOST_HDR;
	struct held base;
	size_t len = sizeof(head) - 1, line;
	char *buf;
	int n = 0;

	start_counted(_i, NULL, &base);
	buf = malloc(FLOOD_BYTES);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, head, len);
	/* 1 MiB of header lines and never the blank line that ends a head. */
	while (len < FLOOD_BYTES) {
		line = (size_t)snprintf(buf + len, FLOOD_BYTES - len, "X-Flood-%06d: ", n++);
		if (len + line + 100 > FLOOD_BYTES)
			break;
		len += line;
		memset(buf + len, 'f', 96);
		memcpy(buf + len + 96, "\r\n", 2);
		len += 98;
	}
	/* Sent without waiting: 431 or a close, and no hang, whatever it read. */
	refused(buf, len, 431, 0, true, "1 MiB of headers without an end");
	free(buf);
	assert_recovered(&base, "after a 1 MiB header flood");
}
END_TEST

START_TEST(request_line_100k)
{
	static const char tail[] = " HTTP/1.1\r\n" HOST_HDR "\r\n";
	size_t len;
	char *buf;
	struct held base;

	start_counted(_i, NULL, &base);
	buf = malloc(LONG_LINE_BYTES + sizeof(tail));
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', LONG_LINE_BYTES - 5);
	len = LONG_LINE_BYTES;
	memcpy(buf + len, tail, sizeof(tail) - 1);
	len += sizeof(tail) - 1;
	/* 431 as for any head over 8 KiB; 414 URI Too Long would do as well. */
	refused(buf, len, 431, 414, true, "a 100 KiB request line");
	free(buf);
	assert_recovered(&base, "after a 100 KiB request line");
}
END_TEST

/*
 * GET / with Connection: close and @n headers of values @value_len bytes
 * long, into @buf; returns the length.
 */
static size_t many_headers(char *buf, size_t size, int n, size_t value_len)
{
	static const char head[] = "GET / HTTP/1.1\r\n" HOST_HDR "Connection: close\r\n";
	size_t len = sizeof(head) - 1;
	int i;

	memcpy(buf, head, len);
	for (i = 0; i < n; i++) {
		ck_assert_uint_lt(len + 32 + value_len, size);
		len += (size_t)snprintf(buf + len, size - len, "X-Header-%03d: ", i);
		memset(buf + len, 'v', value_len);
		len += value_len;
		memcpy(buf + len, "\r\n", 2);
		len += 2;
	}
	ck_assert_uint_lt(len + 2, size);
	memcpy(buf + len, "\r\n", 2);
	return len + 2;
}

START_TEST(many_headers_within_limit)
{
	struct held base;
	struct http_response r = { 0 };
	char buf[16384], what[96];
	size_t len;
	int ret;

	start_counted(_i, NULL, &base);
	len = many_headers(buf, sizeof(buf), MANY_HEADERS, 10);
	ck_assert_uint_le(len, HEADER_LIMIT);
	snprintf(what, sizeof(what), "GET / with %d headers in %zu bytes", MANY_HEADERS, len);
	ret = http_exchange(srv.port, buf, len, READ_TO_EOF, &r);
	ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
	assert_exact(&r, canonical_root, what);
	http_response_free(&r);
	note("%s: answered 200 as always", what);
	assert_recovered(&base, "after 200 headers");
}
END_TEST

START_TEST(many_headers_over_limit)
{
	char buf[16384], what[96];
	size_t len;
	struct held base;

	start_counted(_i, NULL, &base);
	len = many_headers(buf, sizeof(buf), MANY_HEADERS, 30);
	ck_assert_uint_gt(len, HEADER_LIMIT);
	snprintf(what, sizeof(what), "GET / with %d headers in %zu bytes", MANY_HEADERS, len);
	refused(buf, len, 431, 0, false, what);
	assert_recovered(&base, "after 200 headers over 8 KiB");
}
END_TEST

START_TEST(unexpected_body)
{
	static const char req[] = "GET / HTTP/1.1\r\n" HOST_HDR "Content-Length: 10\r\n\r\n"
				  "0123456789";
	struct held base;
	struct http_response r = { 0 };
	char line[128], q[256];
	enum peer_event ev;
	int fd, ret;

	start_counted(_i, NULL, &base);
	fd = connect_or_fail();
	send_or_fail(fd, req, strlen(req), "GET / with a 10-byte body");
	/* Any complete response will do, or a close without one. */
	ret = http_read(fd, READ_BY_LENGTH, IO_TIMEOUT_MS, &r);
	if (ret < 0) {
		ck_assert_msg(r.eof && !r.raw_len,
			      "%s: GET / with a 10-byte body: want a complete response or a close: %s",
			      st->name, harness_error());
		note("GET / with a 10-byte body: closed without a response");
	} else {
		ck_assert_msg(r.content_length >= 0 && r.body_len == (size_t)r.content_length,
			      "%s: GET / with a 10-byte body: a cut response: %s", st->name,
			      quote_bytes(r.raw, r.raw_len, q, sizeof(q)));
		ev = r.eof ? PEER_CLOSED : peer_wait(fd, 200);
		note("GET / with a 10-byte body: answered \"%s\", then %s",
		     http_status_line(&r, line, sizeof(line)), peer_event_str(ev));
	}
	http_response_free(&r);
	close(fd);
	assert_recovered(&base, "after a request with an unexpected body");
}
END_TEST

/* ---- tcase load ------------------------------------------------------- */

START_TEST(load_500_connections)
{
	struct held base;
	struct http_response *r;
	long long start, opened, sent;
	int *fds, limit, i, ret;
	char what[64];

	use_step(_i);
	/* A one-at-a-time server takes them from its backlog one by one. */
	limit = st->concurrent ? LOAD_MS : LOAD_MS_ONE_AT_A_TIME;
	start_server(NULL);
	baseline(&base);
	fds = calloc(LOAD_CLIENTS, sizeof(*fds));
	r = calloc(LOAD_CLIENTS, sizeof(*r));
	ck_assert(fds && r);
	/*
	 * All open before any sends: the server holds 500 silent connections
	 * (step01 one, with the rest in its backlog; opening takes far less
	 * than its 2 s receive timeout).
	 */
	start = now_ms();
	for (i = 0; i < LOAD_CLIENTS; i++)
		fds[i] = connect_or_fail();
	opened = now_ms();
	for (i = 0; i < LOAD_CLIENTS; i++)
		send_or_fail(fds[i], REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), "GET / under load");
	sent = now_ms();
	/* Nothing left to send (length 0): poll() reads every response. */
	ret = http_many_on(fds, LOAD_CLIENTS, REQ_ROOT_CLOSE, 0, 1,
			   (int)(start + limit - now_ms()), r);
	ck_assert_msg(ret == 0, "%s: %d connections opened, then each sent GET /: %s", st->name,
		      LOAD_CLIENTS, harness_error());
	printf("%s: load: %d connections opened in %lld ms, sent in %lld ms, all answered %lld ms later\n",
	       st->name, LOAD_CLIENTS, opened - start, sent - opened, now_ms() - sent);
	for (i = 0; i < LOAD_CLIENTS; i++) {
		snprintf(what, sizeof(what), "GET / on connection %d of %d", i, LOAD_CLIENTS);
		assert_exact(&r[i], canonical_root, what);
		http_response_free(&r[i]);
		close(fds[i]);
	}
	free(r);
	free(fds);
	assert_recovered(&base, "after 500 connections");
}
END_TEST

/* ---- tcase exhaustion ------------------------------------------------- */

/*
 * CPU (% of a core) over CPU_WINDOW_MS in which the server is asked
 * GET / every PACE_MS: what it costs the server anyway to be woken as
 * often as an accept retried at that pace would wake it.
 */
static double paced_cpu(void)
{
	long long t0, next;
	double c0, c1;

	c0 = proc_cpu_seconds(srv.pid);
	ck_assert_msg(c0 >= 0, "%s: %s", st->name, harness_error());
	t0 = now_ms();
	for (next = t0; next < t0 + CPU_WINDOW_MS; next += PACE_MS) {
		if (next > now_ms())
			sleep_ms((long)(next - now_ms()));
		get_root("a paced GET /");
	}
	if (next > now_ms())
		sleep_ms((long)(next - now_ms()));
	c1 = proc_cpu_seconds(srv.pid);
	ck_assert_msg(c1 >= 0, "%s: %s", st->name, harness_error());
	return (c1 - c0) * 100000.0 / (double)(now_ms() - t0);
}

/* Lift the server's soft RLIMIT_NOFILE to @nofile (the hard one allows it). */
static void raise_nofile(rlim_t nofile)
{
	struct rlimit rl;

	ck_assert_msg(!prlimit(srv.pid, RLIMIT_NOFILE, NULL, &rl), "%s: prlimit: %s",
		      st->name, strerror(errno));
	rl.rlim_cur = nofile;
	ck_assert_msg(!prlimit(srv.pid, RLIMIT_NOFILE, &rl, NULL), "%s: prlimit: %s",
		      st->name, strerror(errno));
}

START_TEST(fd_exhaustion)
{
	static const char *const fixed_args[] = { "-c", FIXED_SLOTS_ARG, NULL };
	struct held base;
	double ref, pct, limit = CPU_LIMIT_PCT;
	int held[HELD_CLIENTS], i;
	char why[96] = "", held_str[64];
	unsigned int nofile;
	struct held now;
	long took;

	use_step(_i);
	nofile = st->fault_nofile ? st->fault_nofile : FAULT_NOFILE;
	/*
	 * Accepted sockets of the fixed-file steps are direct descriptors:
	 * they take a slot of the table, not an fd, so the limit cannot run
	 * out under them, and a -c above it would not even start. For them
	 * this checks that they start and serve with a low limit and do not
	 * spin while their table is full; what a full table does to a client
	 * is test_keepalive.c's fixed_file_table_full.
	 */
	start_server_nofile(st->keep_alive ? fixed_args : NULL, nofile);
	/* At fault_nofile the server cannot accept even one connection. */
	if (st->fault_nofile) {
		count_held(&base);
	} else {
		baseline(&base);
	}
	/*
	 * The SQ thread polls for 100 ms each time it is woken, so an accept
	 * retried every 250 ms costs up to 40% of a core by itself: that is
	 * the price of SQPOLL, not a spin. So these steps may use what paced
	 * requests cost them, plus a margin; a retry without a pause would
	 * keep the SQ thread and the main loop busy for good, 100% or more.
	 */
	if (st->sq_poll) {
		ref = paced_cpu();
		if (ref + CPU_MARGIN_PCT > limit)
			limit = ref + CPU_MARGIN_PCT;
		snprintf(why, sizeof(why), ", a GET / every %d ms costs it %.1f%%", PACE_MS, ref);
	}
	for (i = 0; i < HELD_CLIENTS; i++)
		held[i] = connect_or_fail();
	sleep_ms(SETTLE_MS);
	count_held(&now);
	/* A busy ring may hide its table from fdinfo for a moment: look again. */
	for (i = 0; st->keep_alive && now.slots < atoi(FIXED_SLOTS_ARG) && i < 10; i++) {
		sleep_ms(10);
		count_held(&now);
	}
	if (!st->keep_alive) {
		ck_assert_msg(now.fds >= (int)nofile,
			      "%s: RLIMIT_NOFILE %u: only %d fds open with %d clients held: the test did not exhaust it",
			      st->name, nofile, now.fds, HELD_CLIENTS);
		snprintf(held_str, sizeof(held_str), "%d fds open", now.fds);
	} else {
		ck_assert_msg(now.slots >= atoi(FIXED_SLOTS_ARG),
			      "%s: -c %s: only %d slots taken with %d clients held: the test did not fill the table",
			      st->name, FIXED_SLOTS_ARG, now.slots, HELD_CLIENTS);
		snprintf(held_str, sizeof(held_str), "%d of -c %s slots taken", now.slots,
			 FIXED_SLOTS_ARG);
	}
	pct = cpu_pct_over(CPU_WINDOW_MS);
	assert_running();
	ck_assert_msg(pct <= limit,
		      "%s: RLIMIT_NOFILE %u, %d clients held: %.1f%% of a core over %d ms, limit %.1f%%%s: does a failing accept retry without a pause?",
		      st->name, nofile, HELD_CLIENTS, pct, CPU_WINDOW_MS, limit, why);
	for (i = 0; i < HELD_CLIENTS; i++)
		close(held[i]);
	/* Leaving clients free nothing in a one-at-a-time server: lift the limit. */
	if (st->fault_nofile)
		raise_nofile(FAULT_NOFILE);
	took = served_within(RECOVER_MS, "once the held clients left");
	printf("%s: RLIMIT_NOFILE %u, %d clients held (%s): CPU %.1f%% (limit %.1f%%%s); served again %ld ms after %s\n",
	       st->name, nofile, HELD_CLIENTS, held_str, pct, limit, why, took,
	       st->fault_nofile ? "they left and the limit was lifted" : "they left");
	assert_recovered(&base, "after fd exhaustion");
}
END_TEST

/* ---- tcase shutdown --------------------------------------------------- */

enum { BC_IDLE, BC_CONNECT, BC_SEND, BC_READ };

struct busy_client {
	int fd;			/* -1 between connections */
	int state;
	size_t sent;
	char in[1024];		/* the response coming in */
	size_t in_len;
	bool answered;		/* a complete response came on this connection */
};

/* A complete response in @c->in? Takes it out and returns true. */
static bool busy_take(struct busy_client *c)
{
	struct http_response r = { 0 };
	long used;

	used = http_take_response(c->in, c->in_len, &r);
	http_response_free(&r);
	if (used <= 0)
		return false;
	c->in_len -= (size_t)used;
	memmove(c->in, c->in + used, c->in_len);
	return true;
}

/*
 * Start connecting @c; the poll loop sees it through.  Returns false if
 * the connect failed at once: nothing listens any more.
 */
static bool busy_open(struct busy_client *c, uint16_t port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	c->sent = 0;
	c->in_len = 0;
	c->answered = false;
	c->state = BC_CONNECT;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		_exit(3);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		c->state = BC_SEND;
	else if (errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		c->state = BC_IDLE;
		return false;
	}
	return true;
}

/* How a busy client's connection ended, if it did. */
enum busy_end {
	BUSY_OPEN,
	BUSY_CLOSED_ANSWERED,	/* FIN after its last response */
	BUSY_CLOSED_CUT,	/* FIN with a request unanswered */
	BUSY_RESET,		/* RST, or a connect that failed */
};

/*
 * Move @c on after poll() said @revents: finish connecting, send GET /,
 * read responses (then ask again on a kept-alive connection).  Returns
 * how the connection ended, BUSY_OPEN while it goes on.  *@responses
 * counts the responses; *@refused is set when nothing listens any more.
 */
static enum busy_end busy_step(struct busy_client *c, short revents, bool keep_alive,
			       long *responses, bool *refused)
{
	static const char req[] = REQ_ROOT;
	const size_t req_len = sizeof(req) - 1;
	char buf[4096];
	socklen_t sl;
	int soerr = 0;
	ssize_t k;

	if (c->state == BC_CONNECT) {
		sl = sizeof(soerr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
			*refused |= soerr == ECONNREFUSED;
			return BUSY_RESET;
		}
		c->state = BC_SEND;
	}
	if (c->state == BC_SEND && (revents & POLLOUT)) {
		k = send(c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0 && (c->sent += (size_t)k) == req_len) {
			c->state = BC_READ;
			c->sent = 0;
		}
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return BUSY_OPEN;
	k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return BUSY_OPEN;
	if (k < 0)
		return BUSY_RESET;
	/* Answered, and not waiting for a kept-alive connection's next answer. */
	if (!k)
		return c->answered && (!keep_alive || c->state != BC_READ) ?
		       BUSY_CLOSED_ANSWERED : BUSY_CLOSED_CUT;
	if ((size_t)k > sizeof(c->in) - c->in_len)
		k = (ssize_t)(sizeof(c->in) - c->in_len);
	memcpy(c->in + c->in_len, buf, (size_t)k);
	c->in_len += (size_t)k;
	while (busy_take(c)) {
		(*responses)++;
		c->answered = true;
		/* Keep-alive: ask again on the same connection. */
		if (keep_alive)
			c->state = BC_SEND;
	}
	return BUSY_OPEN;
}

/*
 * Runs in a child: BUSY_CLIENTS clients ask GET / in a loop, on one
 * connection each for keep-alive steps and a new connection per request
 * otherwise.  The test writes to @stop_fd as it sends SIGINT: from then
 * on no connection is opened, the open ones go on asking, and each must
 * end (EOF or reset) within STOP_DEADLINE_MS + ENDED_WITHIN_MS.  Writes
 * 'x' to @report_fd after the first response, then one line on how the
 * connections ended, and exits 0 if they all did.
 */
static void busy_clients(uint16_t port, bool keep_alive, int stop_fd, int report_fd)
{
	const long long end = now_ms() + BUSY_MAX_MS;
	struct pollfd pfd[BUSY_CLIENTS + 1];
	struct busy_client c[BUSY_CLIENTS];
	int ends[BUSY_RESET + 1] = { 0 };
	bool refused = false, told = false, stopping = false;
	long long stop_at = 0, last_end = 0;
	int i, open = 0, open_at_stop = 0;
	enum busy_end how;
	long responses = 0;
	char line[256];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (i = 0; i < BUSY_CLIENTS; i++) {
		c[i].fd = -1;
		c[i].state = BC_IDLE;
	}
	while (now_ms() < end &&
	       (!stopping || now_ms() < stop_at + STOP_DEADLINE_MS + ENDED_WITHIN_MS)) {
		open = 0;
		for (i = 0; i < BUSY_CLIENTS; i++) {
			/* A connect refused at once: nothing listens, open no more. */
			if (c[i].fd < 0 && !refused && !stopping && !busy_open(&c[i], port))
				refused = true;
			pfd[i].fd = c[i].fd;
			pfd[i].events = c[i].state == BC_CONNECT ? POLLOUT :
					c[i].state == BC_SEND ? POLLOUT | POLLIN : POLLIN;
			pfd[i].revents = 0;
			open += c[i].fd >= 0;
		}
		if (stopping && !open)
			break;
		pfd[BUSY_CLIENTS].fd = stopping ? -1 : stop_fd;
		pfd[BUSY_CLIENTS].events = POLLIN;
		pfd[BUSY_CLIENTS].revents = 0;
		if (poll(pfd, BUSY_CLIENTS + 1, 50) < 0 && errno != EINTR)
			break;
		if (pfd[BUSY_CLIENTS].revents) {
			stopping = true;
			stop_at = now_ms();
			open_at_stop = open;
		}
		for (i = 0; i < BUSY_CLIENTS; i++) {
			if (c[i].fd < 0 || !pfd[i].revents)
				continue;
			how = busy_step(&c[i], pfd[i].revents, keep_alive, &responses, &refused);
			if (responses && !told)
				told = write(report_fd, "x", 1) == 1;
			if (how == BUSY_OPEN)
				continue;
			/* A closing step's connection ends here after each answer. */
			close(c[i].fd);
			c[i].fd = -1;
			c[i].state = BC_IDLE;
			if (stopping) {
				ends[how]++;
				last_end = now_ms();
			}
		}
	}
	open = 0;
	for (i = 0; i < BUSY_CLIENTS; i++)
		open += c[i].fd >= 0;
	if (!stopping)
		snprintf(line, sizeof(line), "no word of the SIGINT within %d ms (%ld responses)",
			 BUSY_MAX_MS, responses);
	else if (open)
		snprintf(line, sizeof(line), "%d of the %d connections open at the SIGINT still open %lld ms later (%ld responses in all)",
			 open, open_at_stop, now_ms() - stop_at, responses);
	else
		snprintf(line, sizeof(line), "%ld responses; all %d connections open at the SIGINT ended within %lld ms (FIN after an answer %d, FIN mid-request %d, RST %d)",
			 responses, open_at_stop, last_end ? last_end - stop_at : 0,
			 ends[BUSY_CLOSED_ANSWERED], ends[BUSY_CLOSED_CUT], ends[BUSY_RESET]);
	if (write(report_fd, line, strlen(line)) < 0)
		_exit(2);
	_exit(stopping && !open ? 0 : 1);
}

START_TEST(sigint_with_busy_clients)
{
	char report[512] = "", what[64];
	int ready[2], stop[2], ret, wstatus = 0;
	long long deadline;
	struct pollfd pfd;
	long elapsed;
	size_t got = 0;
	ssize_t k;

	start_step(_i, NULL);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(stop), 0);
	if (fork_load() == 0) {
		close(ready[0]);
		close(stop[1]);
		busy_clients(srv.port, st->keep_alive, stop[0], ready[1]);
	}
	close(ready[1]);
	close(stop[0]);
	wait_load_flowing(ready[0], "the busy clients");
	sleep_ms(100);

	/* The clients take note of the connections open now, then the signal. */
	ck_assert_int_eq(write(stop[1], "x", 1), 1);
	close(stop[1]);
	snprintf(what, sizeof(what), "SIGINT with %d busy clients", BUSY_CLIENTS);
	elapsed = stop_server(SIGINT, what);

	/* Hear how the connections ended. */
	pfd.fd = ready[0];
	pfd.events = POLLIN;
	deadline = now_ms() + STOP_DEADLINE_MS + ENDED_WITHIN_MS + 1000;
	while (got < sizeof(report) - 1 && now_ms() < deadline) {
		ret = poll(&pfd, 1, (int)(deadline - now_ms()));
		if (ret <= 0)
			continue;
		k = read(ready[0], report + got, sizeof(report) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(ready[0]);
	while ((ret = waitpid(load_pid, &wstatus, WNOHANG)) == 0 && now_ms() < deadline)
		sleep_ms(5);
	ck_assert_msg(ret == load_pid && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
		      "%s: SIGINT with %d busy clients: %s", st->name, BUSY_CLIENTS,
		      report[0] ? report : "no report from the clients");
	load_pid = 0;
	printf("%s: SIGINT with %d busy clients: exit 0 after %ld ms; %s\n", st->name,
	       BUSY_CLIENTS, elapsed, report);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

Suite *faults_suite(int idx, const char *root)
{
	Suite *s = step_suite_create(idx, "faults", root);

	add_tests(new_tcase(s, "slowloris", 30), idx, TESTS(slowloris));
	add_tests(new_tcase(s, "resets", 30), idx,
		  TESTS(reset_mid_request, reset_mid_response, half_close_gets_response,
			close_without_reading));
	add_tests(new_tcase(s, "garbage", 30), idx,
		  TESTS(random_bytes, nul_in_request_line, header_flood, request_line_100k,
			many_headers_within_limit, many_headers_over_limit, unexpected_body));
	add_tests(new_tcase(s, "load", 60), idx, TESTS(load_500_connections));
	add_tests(new_tcase(s, "exhaustion", 30), idx, TESTS(fd_exhaustion));
	add_tests(new_tcase(s, "shutdown", 30), idx, TESTS(sigint_with_busy_clients));
	return s;
}
