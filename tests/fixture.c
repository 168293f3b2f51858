// SPDX-License-Identifier: MIT
/*
 * fixture.c - the Check fixture shared by every suite; see fixture.h.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

const char canonical_root[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Length: 17\r\n"
	"Connection: close\r\n"
	"\r\n"
	NICE_DAY;

static char repo_root[PATH_MAX];	/* of the suite being built, then of the test */

/* State of the running test; each test is its own process. */
const struct step *st;
char server_path[PATH_MAX + 64];
struct server srv;
struct strace_run tracer;
pid_t load_pid;
static bool srv_started;	/* teardown checks it did not die */
static bool verbose;		/* CK_VERBOSITY=verbose: note() prints */

/* ---- suites ----------------------------------------------------------- */

void fixture_setup(void)
{
	const char *v = getenv("CK_VERBOSITY");

	memset(&srv, 0, sizeof(srv));
	srv.out_fd = -1;
	srv.err_fd = -1;
	memset(&tracer, 0, sizeof(tracer));
	tracer.err_fd = -1;
	tracer.reaped = true;
	srv_started = false;
	load_pid = 0;
	verbose = v && !strcmp(v, "verbose");
}

static void fixture_teardown(void)
{
	static char log[65536];
	char status[64] = "", err[512] = "";
	const char *report = NULL;
	bool died = false;
	int wstatus;

	if (load_pid > 0) {
		kill(load_pid, SIGKILL);
		waitpid(load_pid, &wstatus, 0);
		load_pid = 0;
	}
	strace_cleanup(&tracer);
	if (srv_started && !server_alive(&srv)) {
		died = true;
		wstatus_str(srv.wstatus, status, sizeof(status));
		server_stderr(&srv, err, sizeof(err));
	}
	/*
	 * With SANITIZE=1, UBSan reports and carries on: only its words on
	 * stderr tell.
	 */
	if (srv.err_fd >= 0) {
		server_stderr(&srv, log, sizeof(log));
		report = strstr(log, "runtime error:");
		if (!report)
			report = strstr(log, "Sanitizer");
	}
	server_cleanup(&srv);
	ck_assert_msg(!died, "%s: server died during the test: %s; stderr: %s",
		      st ? st->name : "?", status, err);
	ck_assert_msg(!report, "%s: sanitizer report on the server's stderr: %.300s",
		      st ? st->name : "?", report);
}

void reap_orphans(void)
{
	int wstatus;

	while (waitpid(-1, &wstatus, WNOHANG) > 0)
		;
}

Suite *step_suite_create(int idx, const char *kind, const char *root)
{
	/* Check keeps the pointer: the name must outlive the suite (64 do). */
	static char names[64][128];
	static unsigned int used;
	char *name = names[used++ % 64];

	/* The same for every suite: the forked tests inherit it. */
	snprintf(repo_root, sizeof(repo_root), "%s", root);
	if (kind)
		snprintf(name, sizeof(names[0]), "%s/%s", steps[idx].name, kind);
	else
		snprintf(name, sizeof(names[0]), "%s", steps[idx].name);
	return suite_create(name);
}

TCase *new_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_add_unchecked_fixture(tc, NULL, reap_orphans);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

void add_tests(TCase *tc, int idx, const TTest *const *tests)
{
	for (; *tests; tests++)
		ADD(tc, *tests);
}

/* ---- the server ------------------------------------------------------- */

void use_step(int idx)
{
	st = &steps[idx];
	snprintf(server_path, sizeof(server_path), "%s/%s/server", repo_root, st->name);
}

static void start(const char *const *args, const char *addr, unsigned long nofile)
{
	int ret;

	ret = server_start_nofile(&srv, server_path, args, addr, nofile);
	ck_assert_msg(ret == 0, "%s: starting %s%s: %s", st->name, server_path,
		      nofile ? " with a low RLIMIT_NOFILE" : "", harness_error());
	srv_started = true;
}

void start_server(const char *const *args)
{
	start(args, "127.0.0.1", 0);
}

void start_server_at(const char *const *args, const char *addr)
{
	start(args, addr, 0);
}

void start_server_nofile(const char *const *args, unsigned long nofile)
{
	start(args, "127.0.0.1", nofile);
}

void start_step(int idx, const char *const *args)
{
	use_step(idx);
	start_server(args);
}

void assert_running(void)
{
	char status[64], err[512];

	ck_assert_msg(server_alive(&srv), "%s: server died: %s; stderr: %s", st->name,
		      wstatus_str(srv.wstatus, status, sizeof(status)),
		      server_stderr(&srv, err, sizeof(err)));
}

long stop_server(int sig, const char *what)
{
	char status[64], err[512];
	long elapsed = 0;
	int ret;

	/* Stopped on purpose from here on: the teardown must not fail on it. */
	srv_started = false;
	ret = server_stop(&srv, sig, STOP_DEADLINE_MS, &elapsed);
	ck_assert_msg(ret == 0, "%s: %s: %s; stderr: %s", st->name, what, harness_error(),
		      server_stderr(&srv, err, sizeof(err)));
	ck_assert_msg(WIFEXITED(srv.wstatus) && WEXITSTATUS(srv.wstatus) == 0,
		      "%s: %s: %s after %ld ms, want exit 0; stderr: %s", st->name, what,
		      wstatus_str(srv.wstatus, status, sizeof(status)), elapsed,
		      server_stderr(&srv, err, sizeof(err)));
	return elapsed;
}

void note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	printf("%s: ", st->name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

pid_t fork_load(void)
{
	/* Or the child's exit would print what stdio holds a second time. */
	fflush(NULL);
	load_pid = fork();
	ck_assert_msg(load_pid >= 0, "%s: fork: %s", st->name, strerror(errno));
	return load_pid;
}

void wait_load_flowing(int fd, const char *who)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;
	int ret;

	do {
		ret = poll(&pfd, 1, IO_TIMEOUT_MS);
	} while (ret < 0 && errno == EINTR);
	if (ret == 1)
		ret = (int)read(fd, &c, 1);
	ck_assert_msg(ret == 1, "%s: %s never got a response", st->name, who);
}

/* ---- connections ------------------------------------------------------ */

int connect_or_fail(void)
{
	int fd;

	fd = tcp_connect(srv.port, IO_TIMEOUT_MS);
	ck_assert_msg(fd >= 0, "%s: connect: %s", st->name, harness_error());
	return fd;
}

void send_or_fail(int fd, const void *buf, size_t len, const char *what)
{
	char q[256];
	int ret;

	ret = send_all(fd, buf, len, IO_TIMEOUT_MS);
	ck_assert_msg(ret == 0, "%s: %s: sending %s: %s", st->name, what,
		      quote_bytes(buf, len < 120 ? len : 120, q, sizeof(q)), harness_error());
}

void read_or_fail(int fd, int n, struct http_response *r, const char *what)
{
	int ret;

	ret = http_read_responses(fd, n, IO_TIMEOUT_MS, r);
	ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
}

void request_on(int fd, const char *req, struct http_response *r, const char *what)
{
	memset(r, 0, sizeof(*r));
	send_or_fail(fd, req, strlen(req), what);
	read_or_fail(fd, 1, r, what);
}

void root_on(int fd, const char *req, bool keep, const char *what)
{
	struct http_response r;

	request_on(fd, req, &r, what);
	assert_root(&r, keep, what);
	http_response_free(&r);
	if (!keep)
		assert_closes(fd, CLOSE_AFTER_MS, what);
}

void two_requests(const char *first, const char *second, bool keep, const char *what)
{
	char first_what[320], q[256];
	int fd;

	snprintf(first_what, sizeof(first_what), "%s: first request %s", what,
		 quote_bytes(first, strlen(first), q, sizeof(q)));
	fd = connect_or_fail();
	root_on(fd, first, true, first_what);
	root_on(fd, second, keep, what);
	close(fd);
}

char *request_of_size(size_t total)
{
	static const char head[] = "GET / HTTP/1.1\r\n" HOST_HDR;
	/* "X-FillNNN: " + at least one byte of value + CRLF */
	const size_t prefix = 11, min_line = prefix + 1 + 2;
	size_t len = sizeof(head) - 1, left, line, i;
	char *req;

	ck_assert_uint_ge(total, len + min_line + 2);
	req = malloc(total + 1);
	ck_assert_ptr_nonnull(req);
	memcpy(req, head, len);
	/* ~100-byte header lines, like a browser's; the last one takes the rest. */
	for (i = 0; (left = total - 2 - len) > 0; i++) {
		line = left >= 100 + min_line ? 100 : left;
		snprintf(req + len, prefix + 1, "X-Fill%03zu: ", i % 1000);
		len += prefix;
		memset(req + len, 'a', line - prefix - 2);
		len += line - prefix - 2;
		memcpy(req + len, "\r\n", 2);
		len += 2;
	}
	memcpy(req + len, "\r\n", 2);
	req[total] = '\0';
	return req;
}

void exchange(const char *req, size_t len, enum read_mode mode, struct http_response *r)
{
	char q[256];
	int ret;

	ret = http_exchange(srv.port, req, len, mode, r);
	ck_assert_msg(ret == 0, "%s: request %s: %s", st->name,
		      quote_bytes(req, len, q, sizeof(q)), harness_error());
}

void reset_or_fail(int fd)
{
	ck_assert_msg(tcp_abort(fd) == 0, "%s: reset: %s", st->name, harness_error());
}

void small_rcvbuf(int fd)
{
	int size = SMALL_RCVBUF;

	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

size_t drain(int fd, size_t n, int ms)
{
	long long deadline = now_ms() + ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[65536];
	size_t got = 0;
	long long left;
	ssize_t k;

	while (got < n && (left = deadline - now_ms()) > 0) {
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k > 0)
			got += (size_t)k;
		else if (!k || (errno != EAGAIN && errno != EINTR))
			break;
	}
	return got;
}

/* ---- responses -------------------------------------------------------- */

void assert_exact(const struct http_response *r, const char *want, const char *what)
{
	char got[512], exp[512];

	ck_assert_msg(r->raw_len == strlen(want) && !memcmp(r->raw, want, r->raw_len),
		      "%s: %s: got %zu bytes %s, want %zu bytes %s", st->name, what,
		      r->raw_len, quote_bytes(r->raw, r->raw_len, got, sizeof(got)),
		      strlen(want), quote_bytes(want, strlen(want), exp, sizeof(exp)));
}

void assert_status(const struct http_response *r, int status, const char *what)
{
	char line[128];

	ck_assert_msg(r->status == status, "%s: %s: status line \"%s\", want %d", st->name,
		      what, http_status_line(r, line, sizeof(line)), status);
}

void assert_connection(const struct http_response *r, bool keep, const char *what)
{
	const char *want = keep ? "keep-alive" : "close";
	char val[128], q[256];
	const char *v;

	v = http_header(r, "Connection", val, sizeof(val));
	ck_assert_msg(v && !strcasecmp(v, want),
		      "%s: %s: Connection is %s, want %s; head %s", st->name, what,
		      v ? v : "(absent)", want, quote_bytes(r->raw, r->header_len, q, sizeof(q)));
}

static bool header_is(const struct http_response *r, const char *name, const char *want)
{
	char val[128];

	return http_header(r, name, val, sizeof(val)) && !strcasecmp(val, want);
}

bool root_ok(const struct http_response *r, bool keep)
{
	return r->status == 200 && r->content_length == 17 && r->body_len == 17 &&
	       !memcmp(r->body, NICE_DAY, 17) &&
	       header_is(r, "Content-Type", "text/plain") &&
	       header_is(r, "Connection", keep ? "keep-alive" : "close");
}

void assert_root(const struct http_response *r, bool keep, const char *what)
{
	char q[512];

	if (root_ok(r, keep))
		return;
	assert_status(r, 200, what);
	assert_connection(r, keep, what);
	ck_abort_msg("%s: %s: want text/plain \"Have a nice day!\\n\", got %s", st->name,
		     what, quote_bytes(r->raw, r->raw_len, q, sizeof(q)));
}

void assert_large(const struct http_response *r, size_t want, const char *what)
{
	size_t bad = 0;

	assert_status(r, 200, what);
	ck_assert_msg(r->content_length == (long)want,
		      "%s: %s: Content-Length %ld, want %zu", st->name, what,
		      r->content_length, want);
	ck_assert_msg(r->body_len == want, "%s: %s: got %zu body bytes, want %zu",
		      st->name, what, r->body_len, want);
	ck_assert_msg(large_body_ok(r->body, r->body_len, &bad),
		      "%s: %s: body byte %zu is 0x%02x, want 0x%02x", st->name, what, bad,
		      (unsigned char)r->body[bad],
		      (unsigned char)NICE_DAY[bad % (sizeof(NICE_DAY) - 1)]);
}

void assert_closes(int fd, int ms, const char *what)
{
	long long start = now_ms();
	enum peer_event ev;

	ev = peer_wait(fd, ms);
	ck_assert_msg(ev == PEER_CLOSED || ev == PEER_RESET,
		      "%s: %s: want the server to close within %d ms, got %s after %lld ms%s%s",
		      st->name, what, ms, peer_event_str(ev), now_ms() - start,
		      ev == PEER_DATA || ev == PEER_ERROR ? ": " : "",
		      ev == PEER_DATA || ev == PEER_ERROR ? harness_error() : "");
}
