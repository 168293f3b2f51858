// SPDX-License-Identifier: MIT
/*
 * test_close.c - black-box tests of how every step ends a connection and
 * of the HTTP that ordinary clients rely on around it:
 *
 *   linger	a response is never cut by a reset.  The server closes with
 *		a lingering close: it shuts down its write side after the
 *		last response, reads and discards what the client still
 *		sends until the client's EOF, an error, a byte limit or a
 *		lingering timeout of a few seconds, then closes.  Each case
 *		checks the bytes received and how the connection ended: FIN
 *		(recv returns 0) or RST (ECONNRESET).
 *   http	HEAD, 405 with "Allow: GET, HEAD", query strings,
 *		"Connection: close , x", long pipelines on keep-alive steps.
 *   idle	keep-alive steps: the idle timeout (-t) never cuts a response
 *		being sent, still closes silent connections, and idle
 *		connections cost no CPU.
 *
 * One Check suite, "<step>/close", per row of steps[]; tcases (for
 * CK_RUN_CASE): linger, http, idle.  The environment is the one
 * test_steps.c describes; STEPS selects these suites with their step's.
 *
 * Same conventions as the other suites (fixture.h): each test is its own
 * process with its own server on an ephemeral port of 127.0.0.1, every
 * wait is bounded, the checked teardown kills whatever is left.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "test_close.h"

/* The 431 case: one head this long, in one write. */
#define BIG_HEAD_BYTES 20480
/* ... and this long a pause before reading, so that a RST has come. */
#define RST_VISIBLE_MS 50

/* The 405 case: a POST whose body is sent in full. */
#define POST_BODY_BYTES 204800

/* The pipelined-close case: a 4 KiB receive buffer, read slowly. */
#define TINY_RCVBUF 4096
#define SLOW_CHUNK 4096
#define SLOW_PAUSE_MS 1
#define SLOW_READ_MS 20000
/* The second request goes out once this much of /large has come. */
#define MID_BODY_BYTES 65536

/* After a client's half-close the server lets go within this. */
#define PROMPT_CLOSE_MS 500
/* A client that neither sends nor closes is let go within this ... */
#define LINGER_MAX_MS 5000
/* ... measured by polling /proc: this much slack for the polling. */
#define LINGER_SLACK_MS 250
/*
 * A client that trickles a byte every TRICKLE_GAP_MS after the response is
 * let go within TRICKLE_LET_GO_MS of it (LINGER_MS, 2 s, and slack); we
 * trickle for TRICKLE_FOR_MS at most.
 */
#define TRICKLE_GAP_MS 200
#define TRICKLE_LET_GO_MS 3000
#define TRICKLE_FOR_MS 4500
/* Meanwhile another client is answered within this (concurrent steps). */
#define OTHERS_SERVED_MS 1000
/* A response that says "Connection: close" is followed by the close. */
#define CLOSE_AFTER_MS 1000

#define PIPELINE_REQ "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
#define PIPELINE_N 300
/* Small requests whose stream is well over HEADER_LIMIT. */
#define LONG_PIPELINE_N 600

/* -t 2: a request after 1.9 s idle, then 16 MiB at normal speed. */
#define IDLE_SHORT_ARG "2"
#define IDLE_PAUSE_MS 1900	/* keep it 0.1 s short of -t: see below */
#define IDLE_LARGE_ARG "16777216"
#define IDLE_LARGE_BYTES 16777216
#define IDLE_LARGE_READ_MS 20000
/* ... read 64 KiB every 5 ms: 16 MiB in 1.3 s or more. */
#define IDLE_READ_CHUNK 65536
#define IDLE_READ_PAUSE_MS 5
/* ... a client that reads this much slower than that pace is on a slow machine. */
#define IDLE_SLOW_MACHINE 1.3
/* -t 1: a silent kept-alive connection is closed within this. */
#define IDLE_CLOSE_ARG "1"
#define IDLE_CLOSE_MS 2500
#define IDLE_CLOSE_SLACK_MS 500

/* Idle cost: this many kept-alive connections, measured this long. */
#define IDLE_CONNS 20
#define IDLE_SETTLE_MS 300
#define IDLE_MEASURE_MS 5000
#define IDLE_CPU_MAX_S 0.05	/* 1% of a core over IDLE_MEASURE_MS */

/*
 * The lingering-timeout case waits seconds: it runs on the one-at-a-time
 * step and on one io_uring step, not on every step.
 */
static const char *const linger_timeout_steps[] = {
	"step01_blocking",
	"step03_linked_close",
};

/* ---- helpers ---------------------------------------------------------- */

/* Every byte the server sent on one connection, and how it ended. */
struct stream {
	char *buf;
	size_t len, cap;
	bool eof;		/* FIN or RST */
	bool reset;		/* RST */
	char error[160];	/* a failed recv or mid-stream send, "" if none */
};

static void stream_free(struct stream *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static void stream_append(struct stream *s, const char *p, size_t n)
{
	size_t cap;

	if (s->len + n + 1 > s->cap) {
		cap = s->cap ? s->cap : 65536;
		while (cap < s->len + n + 1)
			cap *= 2;
		s->buf = realloc(s->buf, cap);
		ck_assert_msg(s->buf, "out of memory for %zu bytes", cap);
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

/*
 * Receive from @fd into @s until the server closes, @s holds @until bytes
 * (0: no limit) or @timeout_ms pass; at most @chunk bytes a recv, with
 * @pause_ms between them to play a slow reader.  Once @s holds @mid_at
 * bytes (0: never) the @mid_len bytes at @mid are sent, once.  Returns
 * false if the time ran out first.
 */
static bool stream_read(int fd, struct stream *s, size_t until, int timeout_ms,
			size_t chunk, int pause_ms, size_t mid_at, const char *mid,
			size_t mid_len)
{
	long long deadline = now_ms() + timeout_ms, left;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	bool mid_sent = !mid_at;
	enum peer_event ev;
	char buf[65536];
	size_t k;

	if (!chunk || chunk > sizeof(buf))
		chunk = sizeof(buf);
	while (!s->eof && !s->error[0] && (!until || s->len < until)) {
		if (!mid_sent && s->len >= mid_at) {
			mid_sent = true;
			if (send_all(fd, mid, mid_len, IO_TIMEOUT_MS))
				snprintf(s->error, sizeof(s->error),
					 "sending the second request after %zu bytes: %s",
					 s->len, harness_error());
			continue;
		}
		left = deadline - now_ms();
		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ev = recv_event(fd, buf, chunk, &k);
		if (ev == PEER_DATA) {
			stream_append(s, buf, k);
			if (pause_ms)
				sleep_ms(pause_ms);
		} else if (ev == PEER_CLOSED || ev == PEER_RESET) {
			s->eof = true;
			s->reset = ev == PEER_RESET;
		} else if (ev == PEER_ERROR) {
			snprintf(s->error, sizeof(s->error), "%s", harness_error());
		}
	}
	return true;
}

/*
 * stream_read() until @s holds one whole response (by its Content-Length),
 * or the server closes, or @timeout_ms pass (then false).
 */
static bool stream_read_response(int fd, struct stream *s, int timeout_ms, size_t chunk,
				 int pause_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct http_response h = { 0 };
	const char *end;
	char cl[32];
	size_t until;

	while (!s->eof && !s->error[0]) {
		until = s->len + 1;
		end = s->len ? memmem(s->buf, s->len, "\r\n\r\n", 4) : NULL;
		if (end) {
			h.raw = s->buf;
			h.raw_len = h.header_len = (size_t)(end - s->buf) + 4;
			if (!http_header(&h, "Content-Length", cl, sizeof(cl)))
				return true;	/* cannot be delimited: the caller says so */
			until = h.header_len + strtoul(cl, NULL, 10);
			if (s->len >= until)
				return true;
		}
		if (now_ms() >= deadline ||
		    !stream_read(fd, s, until, (int)(deadline - now_ms()), chunk, pause_ms, 0,
				 NULL, 0))
			return false;
	}
	return true;
}

/*
 * What @s holds, for messages: its size, the start of it, and when a
 * head is there, its Content-Length against the body bytes that came.
 */
static const char *stream_str(const struct stream *s, char *out, size_t size)
{
	struct http_response h = { 0 };
	char q[256], cl[32] = "";
	const char *end;
	size_t head = 0;

	end = s->len ? memmem(s->buf, s->len, "\r\n\r\n", 4) : NULL;
	if (end) {
		head = (size_t)(end - s->buf) + 4;
		h.raw = s->buf;
		h.raw_len = head;
		h.header_len = head;
		if (!http_header(&h, "Content-Length", cl, sizeof(cl)))
			snprintf(cl, sizeof(cl), "(none)");
		snprintf(out, size, "%zu bytes: a %zu-byte head (Content-Length %s) and %zu bytes after it; head %s",
			 s->len, head, cl, s->len - head,
			 quote_bytes(s->buf, head < 200 ? head : 200, q, sizeof(q)));
	} else {
		snprintf(out, size, "%zu bytes, no complete head: %s", s->len,
			 quote_bytes(s->buf ? s->buf : "", s->len < 120 ? s->len : 120, q,
				     sizeof(q)));
	}
	return out;
}

/*
 * @s must be one whole response, then the server's FIN: no RST, nothing
 * after the response.  The response goes into @r for the test to judge.
 */
static void assert_whole_then_fin(const struct stream *s, bool in_time, int timeout_ms,
				  struct http_response *r, const char *what)
{
	char desc[600], q[256];
	size_t left;
	long used;

	memset(r, 0, sizeof(*r));
	ck_assert_msg(!s->error[0], "%s: %s: %s; received %s", st->name, what, s->error,
		      stream_str(s, desc, sizeof(desc)));
	used = http_take_response(s->buf ? s->buf : "", s->len, r);
	ck_assert_msg(!s->reset,
		      "%s: %s: the server reset the connection (RST) %s; want the whole response, then FIN; received %s",
		      st->name, what,
		      used > 0 ? "after the whole response" : "before the response was complete",
		      stream_str(s, desc, sizeof(desc)));
	ck_assert_msg(in_time, "%s: %s: no close within %d ms; received %s", st->name, what,
		      timeout_ms, stream_str(s, desc, sizeof(desc)));
	ck_assert_msg(used >= 0, "%s: %s: %s", st->name, what, harness_error());
	ck_assert_msg(used > 0,
		      "%s: %s: the server closed (FIN) before the response was complete; received %s",
		      st->name, what, stream_str(s, desc, sizeof(desc)));
	left = s->len - (size_t)used;
	ck_assert_msg(!left, "%s: %s: %zu bytes after the %ld-byte response: %s", st->name,
		      what, left, used,
		      quote_bytes(s->buf + used, left < 160 ? left : 160, q, sizeof(q)));
}

/* A socket connected to the server with SO_RCVBUF @size set before connect. */
static int connect_rcvbuf(int size)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(srv.port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, err = 0, ret;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "%s: socket: %s", st->name, strerror(errno));
	ck_assert_msg(!setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)),
		      "%s: SO_RCVBUF %d: %s", st->name, size, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		ck_assert_msg(errno == EINPROGRESS, "%s: connect: %s", st->name,
			      strerror(errno));
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do {
			ret = poll(&pfd, 1, IO_TIMEOUT_MS);
		} while (ret < 0 && errno == EINTR);
		ck_assert_msg(ret == 1, "%s: connect: %s", st->name,
			      ret ? strerror(errno) : "timed out");
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		ck_assert_msg(!err, "%s: connect: %s", st->name, strerror(err));
	}
	return fd;
}

/* The server must end @fd with a FIN (not a RST) within @ms, sending nothing. */
static void assert_fin(int fd, int ms, const char *what)
{
	long long start = now_ms();
	enum peer_event ev;

	ev = peer_wait(fd, ms);
	ck_assert_msg(ev == PEER_CLOSED,
		      "%s: %s: want the server's FIN within %d ms, got %s after %lld ms%s%s",
		      st->name, what, ms, peer_event_str(ev), now_ms() - start,
		      ev == PEER_DATA || ev == PEER_ERROR ? ": " : "",
		      ev == PEER_DATA || ev == PEER_ERROR ? harness_error() : "");
}

/* Open fds plus fixed-file slots of the server: its connections and more. */
static int held(void)
{
	int fds, slots;

	fds = proc_fd_count(srv.pid);
	ck_assert_msg(fds > 0, "%s: %s", st->name, harness_error());
	slots = proc_fixed_file_count(srv.pid);
	ck_assert_msg(slots >= 0, "%s: %s", st->name, harness_error());
	return fds + slots;
}

/* What the server holds once it has served and closed a few connections. */
static int held_baseline(void)
{
	struct http_response r;
	int i;

	for (i = 0; i < 3; i++) {
		memset(&r, 0, sizeof(r));
		exchange(REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), READ_TO_EOF, &r);
		http_response_free(&r);
	}
	sleep_ms(50);
	return held();
}

/*
 * Milliseconds until the server holds no more than @base, polled every
 * 10 ms for up to @ms; -1 if it still holds more then.
 */
static long released_within(int base, int ms, long long since)
{
	long long deadline = now_ms() + ms;

	for (;;) {
		if (held() <= base)
			return (long)(now_ms() - since);
		if (now_ms() >= deadline)
			return -1;
		sleep_ms(10);
	}
}

static bool header_equals(const struct http_response *r, const char *name,
			  const char *want)
{
	char val[256];

	return http_header(r, name, val, sizeof(val)) && !strcmp(val, want);
}

/* @n copies of the @len bytes at @one, malloc'd. */
static char *repeat(const char *one, size_t len, int n)
{
	char *buf = malloc(len * (size_t)n + 1);
	int i;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < n; i++)
		memcpy(buf + len * (size_t)i, one, len);
	buf[len * (size_t)n] = '\0';
	return buf;
}

/*
 * Read up to @n responses from @fd into @out (zeroed), as they come, for
 * up to @timeout_ms.  Returns how many; *@end says how the stream stopped
 * if it stopped short: the server's FIN or RST, time, or an error.
 */
static int read_upto(int fd, int n, int timeout_ms, struct http_response *out,
		     char *end, size_t end_size)
{
	long long deadline = now_ms() + timeout_ms;
	struct stream s = { 0 };
	size_t off = 0, left;
	char q[160];
	int got = 0;
	bool in_time = true;
	long used;

	end[0] = '\0';
	while (got < n) {
		used = http_take_response(s.buf ? s.buf + off : "", s.len - off, &out[got]);
		if (used < 0) {
			snprintf(end, end_size, "%s", harness_error());
			break;
		}
		if (used > 0) {
			off += (size_t)used;
			got++;
			continue;
		}
		left = s.len - off;
		if (s.eof || s.error[0] || !in_time) {
			snprintf(end, end_size, "%s with %zu bytes of the next: %s",
				 s.error[0] ? s.error :
				 s.reset ? "then the server reset the connection (RST)" :
				 s.eof ? "then the server closed (FIN)" :
					 "then nothing more within the time",
				 left, quote_bytes(s.buf ? s.buf + off : "",
						   left < 100 ? left : 100, q, sizeof(q)));
			break;
		}
		/* One recv at a time: whatever came so far is taken first. */
		in_time = now_ms() < deadline &&
			  stream_read(fd, &s, s.len + 1, (int)(deadline - now_ms()), 0, 0, 0,
				      NULL, 0);
	}
	stream_free(&s);
	return got;
}

/* ---- tcase linger ----------------------------------------------------- */

START_TEST(big_head_431_then_fin)
{
	struct http_response r;
	struct stream s = { 0 };
	char *req, what[96], q[256];
	bool in_time;
	int fd;

	start_step(_i, NULL);
	req = request_of_size(BIG_HEAD_BYTES);
	snprintf(what, sizeof(what), "a %d-byte head in one write", BIG_HEAD_BYTES);
	fd = connect_or_fail();
	send_or_fail(fd, req, BIG_HEAD_BYTES, what);
	free(req);
	/* The server reads at most 8 KiB of it: a close now would be a RST. */
	sleep_ms(RST_VISIBLE_MS);
	in_time = stream_read(fd, &s, 0, IO_TIMEOUT_MS, 0, 0, 0, NULL, 0);
	assert_whole_then_fin(&s, in_time, IO_TIMEOUT_MS, &r, what);
	ck_assert_msg(r.status == 431,
		      "%s: %s: want 431 Request Header Fields Too Large, got %s",
		      st->name, what, quote_bytes(r.raw, r.header_len, q, sizeof(q)));
	assert_connection(&r, false, what);
	http_response_free(&r);
	stream_free(&s);
	close(fd);
}
END_TEST

START_TEST(post_body_405_then_fin)
{
	static const char head[] = "POST / HTTP/1.1\r\n" HOST_HDR
				   "Content-Length: 204800\r\n\r\n";
	const size_t len = sizeof(head) - 1 + POST_BODY_BYTES;
	const char *what = "POST / with a 200 KiB body sent in full";
	struct http_response r;
	struct stream s = { 0 };
	char sent_err[160] = "", q[256];
	bool in_time;
	char *req;
	int fd;

	start_step(_i, NULL);
	req = malloc(len);
	ck_assert_ptr_nonnull(req);
	memcpy(req, head, sizeof(head) - 1);
	memset(req + sizeof(head) - 1, 'b', POST_BODY_BYTES);
	fd = connect_or_fail();
	if (send_all(fd, req, len, IO_TIMEOUT_MS))
		snprintf(sent_err, sizeof(sent_err), "%s", harness_error());
	free(req);
	in_time = stream_read(fd, &s, 0, IO_TIMEOUT_MS, 0, 0, 0, NULL, 0);
	assert_whole_then_fin(&s, in_time, IO_TIMEOUT_MS, &r, what);
	ck_assert_msg(r.status == 405, "%s: %s: want 405 Method Not Allowed, got %s",
		      st->name, what, quote_bytes(r.raw, r.header_len, q, sizeof(q)));
	assert_connection(&r, false, what);
	/* The server read the body it did not want: it all went out. */
	ck_assert_msg(!sent_err[0], "%s: %s: sending the body: %s", st->name, what,
		      sent_err);
	http_response_free(&r);
	stream_free(&s);
	close(fd);
}
END_TEST

/*
 * GET /large with Connection: close, and GET / behind it, read through a
 * 4 KiB receive buffer, slowly: the /large response whole, then FIN, and
 * GET / not answered.  @mid_body: GET / goes out once MID_BODY_BYTES of
 * /large have come, rather than in the same write.
 */
static void large_then_pipelined(bool mid_body, const char *what)
{
	static const char both[] = REQ_LARGE_CLOSE REQ_ROOT;
	struct http_response r;
	struct stream s = { 0 };
	long long start;
	bool in_time;
	int fd;

	fd = connect_rcvbuf(TINY_RCVBUF);
	start = now_ms();
	if (mid_body)
		send_or_fail(fd, REQ_LARGE_CLOSE, strlen(REQ_LARGE_CLOSE), what);
	else
		send_or_fail(fd, both, strlen(both), what);
	in_time = stream_read(fd, &s, 0, SLOW_READ_MS, SLOW_CHUNK, SLOW_PAUSE_MS,
			      mid_body ? MID_BODY_BYTES : 0, REQ_ROOT, strlen(REQ_ROOT));
	note("%s: %zu bytes read slowly in %lld ms, then %s", what, s.len,
	     now_ms() - start, s.reset ? "RST" : s.eof ? "FIN" : "nothing");
	assert_whole_then_fin(&s, in_time, SLOW_READ_MS, &r, what);
	assert_large(&r, DEFAULT_LARGE, what);
	assert_connection(&r, false, what);
	http_response_free(&r);
	stream_free(&s);
	close(fd);
}

START_TEST(large_close_pipelined_not_cut)
{
	start_step(_i, NULL);
	large_then_pipelined(false, "GET /large with Connection: close and GET / in one write, read slowly");
}
END_TEST

START_TEST(large_close_second_mid_body_not_cut)
{
	start_step(_i, NULL);
	large_then_pipelined(true, "GET /large with Connection: close, GET / sent during its body, read slowly");
}
END_TEST

/*
 * GET / with Connection: close and another request behind it, in one
 * write: the client may still be sending, so the server lingers after
 * the one response it owes.
 */
#define LINGER_TRIGGER REQ_ROOT_CLOSE REQ_ROOT

/*
 * Send @req on a new connection and read one response by its length: it
 * must be GET /'s, closing.  The time it was in goes to *@answered (if
 * not NULL); the connection is returned open, for what the server does
 * next.
 */
static int answered_closing(const char *req, long long *answered, const char *what)
{
	struct http_response r = { 0 };
	int fd, ret;

	fd = connect_or_fail();
	send_or_fail(fd, req, strlen(req), what);
	ret = http_read(fd, READ_BY_LENGTH, IO_TIMEOUT_MS, &r);
	ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
	if (answered)
		*answered = now_ms();
	assert_root(&r, false, what);
	http_response_free(&r);
	return fd;
}

/*
 * steps[@idx]'s server, with what it holds counted into *@base, and a
 * connection answered after LINGER_TRIGGER: the server lingers on it.
 */
static int lingering(int idx, int *base, long long *answered, const char *what)
{
	start_step(idx, NULL);
	*base = held_baseline();
	return answered_closing(LINGER_TRIGGER, answered, what);
}

START_TEST(half_close_ends_linger)
{
	const char *what = "GET / with Connection: close and GET / behind it, then shutdown(SHUT_WR)";
	long long start;
	long took;
	int base, fd;

	fd = lingering(_i, &base, NULL, what);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	start = now_ms();
	assert_fin(fd, PROMPT_CLOSE_MS, what);
	/* The lingering close ends on the client's EOF: the server lets go. */
	took = released_within(base, PROMPT_CLOSE_MS, start);
	ck_assert_msg(took >= 0,
		      "%s: %s: the server still holds the connection %d ms after the client's EOF (%d fds and fixed-file slots, %d before)",
		      st->name, what, PROMPT_CLOSE_MS, held(), base);
	note("%s: let go %ld ms after the client's EOF", what, took);
	close(fd);
}
END_TEST

START_TEST(linger_timeout_bounded)
{
	const char *what = "a client that sends GET / with Connection: close and GET / behind it, reads its response, then neither sends nor closes";
	struct http_response other = { 0 };
	long long start, t;
	long took, other_ms;
	enum peer_event ev;
	int base, fd;

	fd = lingering(_i, &base, &start, what);
	if (st->concurrent) {
		/* The lingering connection must not hold up anyone else. */
		t = now_ms();
		exchange(REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), READ_TO_EOF, &other);
		other_ms = (long)(now_ms() - t);
		assert_root(&other, false, "GET / from another client meanwhile");
		http_response_free(&other);
		ck_assert_msg(other_ms <= OTHERS_SERVED_MS,
			      "%s: another client took %ld ms to be served while %s lingered, want <= %d ms",
			      st->name, other_ms, what, OTHERS_SERVED_MS);
	}
	took = released_within(base, LINGER_MAX_MS + LINGER_SLACK_MS, start);
	printf("%s: lingering close of %s: %s %ld ms after the response\n", st->name, what,
	       took >= 0 ? "ended" : "still going", took >= 0 ? took : (long)(now_ms() - start));
	ck_assert_msg(took >= 0,
		      "%s: %s: the server still holds the connection %lld ms after the response (%d fds and fixed-file slots, %d before); want it let go within %d ms",
		      st->name, what, now_ms() - start, held(), base, LINGER_MAX_MS);
	/* And the client saw a FIN, never a RST. */
	ev = peer_wait(fd, 100);
	ck_assert_msg(ev == PEER_CLOSED, "%s: %s: the connection ended with %s, want FIN",
		      st->name, what, peer_event_str(ev));
	close(fd);
}
END_TEST

/*
 * The bound is on the whole lingering close, not on each read: a client
 * that keeps sending a byte now and then, each well within LINGER_MS of
 * the last, is still let go LINGER_MS after the response.
 */
START_TEST(linger_trickle_bounded)
{
	static const char req[] = "POST / HTTP/1.1\r\n" HOST_HDR "Content-Length: 100000\r\n\r\n";
	const char *what = "POST / announcing a 100000-byte body, the 405 and FIN read, then a byte every 200 ms";
	struct http_response r = { 0 };
	long long answered, next;
	long took = -1;
	int base, fd, ret, sent = 0;

	start_step(_i, NULL);
	base = held_baseline();
	fd = connect_or_fail();
	send_or_fail(fd, req, strlen(req), what);
	ret = http_read(fd, READ_TO_EOF, IO_TIMEOUT_MS, &r);
	ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
	answered = now_ms();
	assert_status(&r, 405, what);
	http_response_free(&r);
	next = answered;
	while (now_ms() - answered < TRICKLE_FOR_MS) {
		if (held() <= base) {
			took = (long)(now_ms() - answered);
			break;
		}
		/* Once the server has closed, a byte may earn a RST: that is fine. */
		if (now_ms() >= next) {
			if (send(fd, "b", 1, MSG_NOSIGNAL) == 1)
				sent++;
			next += TRICKLE_GAP_MS;
		}
		sleep_ms(10);
	}
	printf("%s: lingering close of %s: %s %ld ms after the response, %d bytes trickled\n",
	       st->name, what, took >= 0 ? "ended" : "still going",
	       took >= 0 ? took : (long)(now_ms() - answered), sent);
	ck_assert_msg(took >= 0 && took <= TRICKLE_LET_GO_MS,
		      "%s: %s: the server let go after %ld ms (-1: not within %d ms), want <= %d ms: LINGER_MS bounds the whole linger",
		      st->name, what, took, TRICKLE_FOR_MS, TRICKLE_LET_GO_MS);
	close(fd);
}
END_TEST

/* ---- tcase http ------------------------------------------------------- */

/*
 * "@method @target HTTP/1.1" with Connection: close on a new connection,
 * its response read to the server's close into @r.
 */
static void closing_request(const char *method, const char *target,
			    struct http_response *r)
{
	char req[256];

	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\n" HOST_HDR "Connection: close\r\n\r\n",
		 method, target);
	memset(r, 0, sizeof(*r));
	exchange(req, strlen(req), READ_TO_EOF, r);
}

/*
 * HEAD @path on a closing step: exactly the head GET @path gets, then
 * the close, no body byte.
 */
static void head_closing(const char *path)
{
	struct http_response get, head;
	char what[64], got[512], want[512];

	snprintf(what, sizeof(what), "HEAD %s", path);
	closing_request("GET", path, &get);
	ck_assert_msg(get.status == 200 && get.header_len, "%s: GET %s: %s", st->name, path,
		      quote_bytes(get.raw, get.raw_len, got, sizeof(got)));
	closing_request("HEAD", path, &head);
	ck_assert_msg(head.raw_len == get.header_len && !memcmp(head.raw, get.raw, get.header_len),
		      "%s: %s: got %zu bytes %s%s, want GET's head, %zu bytes %s and no body",
		      st->name, what, head.raw_len,
		      quote_bytes(head.raw, head.raw_len, got, sizeof(got)),
		      head.reset ? " then RST" : "", get.header_len,
		      quote_bytes(get.raw, get.header_len, want, sizeof(want)));
	http_response_free(&get);
	http_response_free(&head);
}

/*
 * HEAD @path then GET / on one kept-alive connection: GET @path's head,
 * then at once GET /'s whole response, nothing in between.
 */
static void head_kept(const char *path)
{
	struct http_response get = { 0 }, root = { 0 };
	struct stream s = { 0 };
	char req[320], what[96], got[512], want[512], *expect;
	size_t expect_len;
	int fd;

	snprintf(what, sizeof(what), "HEAD %s then GET / on one connection", path);
	fd = connect_or_fail();
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n" HOST_HDR "\r\n", path);
	request_on(fd, req, &get, "GET first, for its head");
	assert_status(&get, 200, "GET first, for its head");
	request_on(fd, REQ_ROOT, &root, "GET / first, for its response");
	assert_root(&root, true, "GET / first, for its response");
	expect_len = get.header_len + root.raw_len;
	expect = malloc(expect_len);
	ck_assert_ptr_nonnull(expect);
	memcpy(expect, get.raw, get.header_len);
	memcpy(expect + get.header_len, root.raw, root.raw_len);
	snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\n" HOST_HDR "\r\n" REQ_ROOT, path);
	send_or_fail(fd, req, strlen(req), what);
	stream_read(fd, &s, expect_len, IO_TIMEOUT_MS, 0, 0, 0, NULL, 0);
	ck_assert_msg(s.len == expect_len && !memcmp(s.buf, expect, expect_len),
		      "%s: %s: got %zu bytes %s%s, want %zu bytes: GET %s's head and GET /'s response %s",
		      st->name, what, s.len,
		      quote_bytes(s.buf ? s.buf : "", s.len, got, sizeof(got)),
		      s.reset ? " then RST" : s.eof ? " then FIN" : "", expect_len, path,
		      quote_bytes(expect, expect_len, want, sizeof(want)));
	free(expect);
	stream_free(&s);
	http_response_free(&get);
	http_response_free(&root);
	close(fd);
}

/* HEAD @path on steps[@idx], the way its connections go. */
static void head_on_step(int idx, const char *path)
{
	start_step(idx, NULL);
	if (st->keep_alive)
		head_kept(path);
	else
		head_closing(path);
}

START_TEST(head_root)
{
	head_on_step(_i, "/");
}
END_TEST

START_TEST(head_large)
{
	head_on_step(_i, "/large");
}
END_TEST

START_TEST(method_405_allow)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	struct http_response r;
	char req[160], what[64], val[128], q[512];
	size_t i;

	start_step(_i, NULL);
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		snprintf(what, sizeof(what), "%s /", methods[i]);
		snprintf(req, sizeof(req),
			 "%s / HTTP/1.1\r\n" HOST_HDR "Content-Length: 0\r\n\r\n", methods[i]);
		memset(&r, 0, sizeof(r));
		exchange(req, strlen(req), READ_TO_EOF, &r);
		assert_status(&r, 405, what);
		ck_assert_msg(header_equals(&r, "Allow", "GET, HEAD"),
			      "%s: %s: Allow is %s, want \"GET, HEAD\"; head %s", st->name,
			      what, http_header(&r, "Allow", val, sizeof(val)) ? val : "(absent)",
			      quote_bytes(r.raw, r.header_len, q, sizeof(q)));
		http_response_free(&r);
	}
}
END_TEST

START_TEST(query_string_ignored)
{
	static const char *const args[] = { "-l", "1000", NULL };
	struct http_response r;

	start_step(_i, args);
	closing_request("GET", "/?x=1", &r);
	assert_root(&r, false, "GET /?x=1");
	http_response_free(&r);
	closing_request("GET", "/large?y", &r);
	assert_large(&r, 1000, "GET /large?y with -l 1000");
	http_response_free(&r);
	closing_request("GET", "/nope?x", &r);
	assert_status(&r, 404, "GET /nope?x");
	http_response_free(&r);
}
END_TEST

START_TEST(connection_close_with_ows)
{
	static const char req[] = "GET / HTTP/1.1\r\n" HOST_HDR "Connection: close , x\r\n\r\n";
	const char *what = "GET / with \"Connection: close , x\"";
	int fd;

	start_step(_i, NULL);
	fd = answered_closing(req, NULL, what);
	assert_fin(fd, CLOSE_AFTER_MS, what);
	close(fd);
}
END_TEST

/*
 * @n copies of PIPELINE_REQ in one write: @n responses to GET /, in order,
 * keeping the connection, which is still open after them; then one with
 * Connection: close is answered and closed.
 */
static void pipeline(int n)
{
	const size_t one = strlen(PIPELINE_REQ);
	struct http_response *r, last = { 0 };
	char what[96], end[400], val[64];
	char *req;
	enum peer_event ev;
	int fd, got, i;

	snprintf(what, sizeof(what), "%d pipelined GET / (%zu bytes) in one write", n,
		 one * (size_t)n);
	r = calloc((size_t)n, sizeof(*r));
	ck_assert_ptr_nonnull(r);
	req = repeat(PIPELINE_REQ, one, n);
	fd = connect_or_fail();
	send_or_fail(fd, req, one * (size_t)n, what);
	free(req);
	got = read_upto(fd, n, IO_TIMEOUT_MS, r, end, sizeof(end));
	for (i = 0; i < got; i++) {
		if (root_ok(&r[i], true))
			continue;
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ": response %d",
			 i + 1);
		assert_root(&r[i], true, what);
	}
	if (got < n) {
		/* When the server ends a connection, its last response says so. */
		ck_abort_msg("%s: %s: %d of %d responses, %s; the last said Connection: %s",
			     st->name, what, got, n, end,
			     got && http_header(&r[got - 1], "Connection", val, sizeof(val)) ?
				     val : "(none)");
	}
	for (i = 0; i < n; i++)
		http_response_free(&r[i]);
	free(r);
	ev = peer_wait(fd, 100);
	ck_assert_msg(ev == PEER_SILENT, "%s: %s: after the last response: %s%s%s", st->name,
		      what, peer_event_str(ev), ev == PEER_DATA ? ": " : "",
		      ev == PEER_DATA ? harness_error() : "");
	request_on(fd, REQ_ROOT_CLOSE, &last, "GET / with Connection: close after the pipeline");
	assert_root(&last, false, "GET / with Connection: close after the pipeline");
	http_response_free(&last);
	assert_fin(fd, CLOSE_AFTER_MS, "after GET / with Connection: close");
	close(fd);
}

START_TEST(pipelined_300_kept)
{
	start_step(_i, NULL);
	pipeline(PIPELINE_N);
}
END_TEST

START_TEST(pipelined_over_header_limit)
{
	start_step(_i, NULL);
	/* 600 small heads, 16 KB in all: only a single head over 8 KiB is a 431. */
	ck_assert_uint_gt(strlen(PIPELINE_REQ) * LONG_PIPELINE_N, 2 * HEADER_LIMIT - 1000);
	pipeline(LONG_PIPELINE_N);
}
END_TEST

/* ---- tcase idle ------------------------------------------------------- */

/*
 * GET /large of 16 MiB with -t @t_sec after @pause_ms idle, read at the pace
 * above. Returns 0 when the response came whole; when the server cut it,
 * how many times slower than that pace the client read what it got (a slow
 * machine: an emulated one reads 16 MiB in more than -t 2), after failing
 * if the client kept its pace, which makes the cut the server's doing.
 */
static double spares_response(int idx, const char *t_arg, long pause_ms)
{
	const char *const args[] = { "-t", t_arg, "-l", IDLE_LARGE_ARG, NULL };
	struct http_response r = { 0 };
	struct stream s = { 0 };
	char what[96], desc[600];
	long long start, took;
	double paced_ms, slow;
	bool in_time;
	long used;
	int fd;

	snprintf(what, sizeof(what), "GET /large of 16 MiB after %.1f s idle with -t %s",
		 pause_ms / 1000.0, t_arg);
	start_step(idx, args);
	fd = connect_or_fail();
	root_on(fd, REQ_ROOT, true, "GET / first");
	sleep_ms(pause_ms);
	/*
	 * Read as a client on a 100 Mbit/s link would, and let the socket
	 * buffers hold little of it: the send stays in flight across the -t
	 * mark and a sweep of the idle timeout.
	 */
	small_rcvbuf(fd);
	send_or_fail(fd, REQ_LARGE, strlen(REQ_LARGE), what);
	start = now_ms();
	in_time = stream_read_response(fd, &s, IDLE_LARGE_READ_MS, IDLE_READ_CHUNK,
				       IDLE_READ_PAUSE_MS);
	took = now_ms() - start;
	used = http_take_response(s.buf ? s.buf : "", s.len, &r);
	if (used <= 0 && s.eof && !s.reset) {
		paced_ms = (double)s.len / IDLE_READ_CHUNK * IDLE_READ_PAUSE_MS;
		slow = paced_ms > 0 ? took / paced_ms : 0;
		ck_assert_msg(slow > IDLE_SLOW_MACHINE,
			      "%s: %s: the server closed (FIN) %lld ms into the response; received %s",
			      st->name, what, took, stream_str(&s, desc, sizeof(desc)));
		printf("%s: %s: closed %lld ms in, after %zu bytes the client paced to read in %.0f ms: this machine reads %.1f times slower than the check assumes\n",
		       st->name, what, took, s.len, paced_ms, slow);
		stream_free(&s);
		close(fd);
		return slow;
	}
	ck_assert_msg(used > 0,
		      "%s: %s: %s %lld ms into the response; received %s", st->name, what,
		      s.reset ? "the server reset the connection (RST)" :
		      s.eof ? "the server closed (FIN)" :
		      in_time ? s.error : "not complete",
		      took, stream_str(&s, desc, sizeof(desc)));
	assert_large(&r, IDLE_LARGE_BYTES, what);
	assert_connection(&r, true, what);
	printf("%s: %s: read in %lld ms\n", st->name, what, now_ms() - start);
	http_response_free(&r);
	stream_free(&s);
	close(fd);
	return 0;
}

START_TEST(idle_timeout_spares_response)
{
	char t_arg[16];
	double slow;
	int t;

	slow = spares_response(_i, IDLE_SHORT_ARG, IDLE_PAUSE_MS);
	if (slow == 0)
		return;
	/*
	 * Where the client itself could not keep its pace (an emulated
	 * machine), the same check on this machine's clock: -t and the pause
	 * scaled by how much slower it read, once.
	 */
	stop_server(SIGINT, "stopping the server of the first try");
	server_cleanup(&srv);
	fixture_setup();
	t = (int)(atoi(IDLE_SHORT_ARG) * slow + 0.999);
	snprintf(t_arg, sizeof(t_arg), "%d", t);
	printf("%s: again with -t %s, scaled by this machine's %.1f\n", st->name, t_arg, slow);
	/* As before, the request comes 0.1 s before the -t mark. */
	ck_assert_msg(spares_response(_i, t_arg, t * 1000L - 100) == 0,
		      "%s: GET /large of 16 MiB cut with -t %s too, scaled by this machine's slowness %.1f",
		      st->name, t_arg, slow);
}
END_TEST

START_TEST(idle_timeout_closes_silent)
{
	static const char *const args[] = { "-t", IDLE_CLOSE_ARG, NULL };
	const char *what = "a kept-alive connection silent after GET / with -t 1";
	long long start;
	int fd;

	start_step(_i, args);
	fd = connect_or_fail();
	root_on(fd, REQ_ROOT, true, "GET /");
	start = now_ms();
	assert_fin(fd, IDLE_CLOSE_MS + IDLE_CLOSE_SLACK_MS, what);
	note("%s: FIN %lld ms after the response", what, now_ms() - start);
	close(fd);
}
END_TEST

START_TEST(idle_connections_cost_nothing)
{
	struct http_response r[IDLE_CONNS];
	int fds[IDLE_CONNS], i, ret;
	double cpu0, cpu1;
	long long t0, t1;

	start_step(_i, NULL);
	for (i = 0; i < IDLE_CONNS; i++)
		fds[i] = connect_or_fail();
	memset(r, 0, sizeof(r));
	ret = http_many_on(fds, IDLE_CONNS, REQ_ROOT, strlen(REQ_ROOT), 1, IO_TIMEOUT_MS, r);
	ck_assert_msg(ret == 0, "%s: GET / on %d connections: %s", st->name, IDLE_CONNS,
		      harness_error());
	for (i = 0; i < IDLE_CONNS; i++) {
		assert_root(&r[i], true, "GET / before idling");
		http_response_free(&r[i]);
	}
	sleep_ms(IDLE_SETTLE_MS);
	cpu0 = proc_cpu_seconds(srv.pid);
	t0 = now_ms();
	ck_assert_msg(cpu0 >= 0, "%s: %s", st->name, harness_error());
	sleep_ms(IDLE_MEASURE_MS);
	cpu1 = proc_cpu_seconds(srv.pid);
	t1 = now_ms();
	ck_assert_msg(cpu1 >= 0, "%s: %s", st->name, harness_error());
	printf("%s: %d idle kept-alive connections: %.3f s CPU in %lld ms (%.1f%% of a core, limit %.3f s)\n",
	       st->name, IDLE_CONNS, cpu1 - cpu0, t1 - t0,
	       (cpu1 - cpu0) * 100000.0 / (double)(t1 - t0), IDLE_CPU_MAX_S);
	ck_assert_msg(cpu1 - cpu0 < IDLE_CPU_MAX_S,
		      "%s: %d idle kept-alive connections cost %.3f s CPU in %lld ms (%.1f%% of a core), want < %.3f s",
		      st->name, IDLE_CONNS, cpu1 - cpu0, t1 - t0,
		      (cpu1 - cpu0) * 100000.0 / (double)(t1 - t0), IDLE_CPU_MAX_S);
	for (i = 0; i < IDLE_CONNS; i++)
		close(fds[i]);
	assert_running();
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

static bool runs_linger_timeout(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(linger_timeout_steps) / sizeof(linger_timeout_steps[0]); i++)
		if (!strcmp(name, linger_timeout_steps[i]))
			return true;
	return false;
}

Suite *close_suite(int idx, const char *root)
{
	const struct step *sp = &steps[idx];
	Suite *s = step_suite_create(idx, "close", root);
	TCase *tc;

	tc = new_tcase(s, "linger", 30);
	ADD(tc, big_head_431_then_fin);
	ADD(tc, post_body_405_then_fin);
	ADD(tc, large_close_pipelined_not_cut);
	if (sp->keep_alive)
		ADD(tc, large_close_second_mid_body_not_cut);
	ADD(tc, half_close_ends_linger);
	if (runs_linger_timeout(sp->name))
		ADD(tc, linger_timeout_bounded);
	ADD(tc, linger_trickle_bounded);

	tc = new_tcase(s, "http", 30);
	ADD(tc, head_root);
	ADD(tc, head_large);
	ADD(tc, method_405_allow);
	ADD(tc, query_string_ignored);
	ADD(tc, connection_close_with_ows);
	if (sp->keep_alive) {
		ADD(tc, pipelined_300_kept);
		ADD(tc, pipelined_over_header_limit);
	}

	if (sp->keep_alive) {
		tc = new_tcase(s, "idle", 30);
		ADD(tc, idle_timeout_spares_response);
		ADD(tc, idle_timeout_closes_silent);
		ADD(tc, idle_connections_cost_nothing);
	}
	return s;
}
