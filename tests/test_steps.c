// SPDX-License-Identifier: MIT
/*
 * test_steps.c - black-box tests of every step's HTTP server against the
 * contract all steps keep: response bytes, /large, error statuses, split
 * requests, concurrency, graceful stop, fd leaks, syscalls per request
 * (strace) and idle CPU.  One Check suite per row of steps[] (steps.c).
 *
 * Build and run from the repository root, after building the servers:
 *
 *	make -C tests && tests/run_tests
 *
 * Environment:
 *	STEPS=step03_linked_close,step04	only these suites (full name or
 *						"stepNN" prefix)
 *	CK_RUN_SUITE / CK_RUN_CASE		Check's own selection (tcases are
 *						http, options, lifecycle, load,
 *						budget; keep-alive steps also
 *						have the suite STEP/keepalive,
 *						see test_keepalive.c; every
 *						step has STEP/faults, see
 *						test_faults.c, and STEP/close,
 *						see test_close.c)
 *	SERVER_DIR=/path/to/repo		where the stepNN_* directories
 *						are (default: the parent of the
 *						directory holding run_tests)
 *	CK_VERBOSITY=verbose			one line per test
 *	SHOW_STRACE=1				print strace's table even
 *						within budget
 *	CK_TIMEOUT_MULTIPLIER=3			for slow builds (SANITIZE=1)
 *
 * Each test runs in its own process (Check's fork mode) and starts its
 * own server on an ephemeral port of 127.0.0.1; the checked teardown of
 * the fixture every suite shares (fixture.h) kills whatever is left.
 * A missing server binary fails every test of its
 * suite: "make test" builds all steps first, so a missing one is a bug.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "test_close.h"
#include "test_faults.h"
#include "test_keepalive.h"

#define SYSCALL_REQUESTS 200		/* a new connection each */
#define SYSCALL_REQUESTS_KEEP_ALIVE 1000	/* all on one connection */
#define FD_LEAK_CONNECTIONS 500
#define MANY_CLIENTS 50
#define LOAD_CONNECTIONS 40	/* kept alive, for syscall_budget_under_load */
#define LOAD_REQUESTS 20000
#define LOAD_TIMEOUT_MS 40000
#define IDLE_CONNECTIONS 20

static char repo_root[PATH_MAX];

static enum read_mode step_mode(void)
{
	return st->keep_alive ? READ_BY_LENGTH : READ_TO_EOF;
}

static const char *root_response(void)
{
	return st->root_response ? st->root_response : canonical_root;
}

/* ---- response checks ----------------------------------------------- */

static void assert_header(const struct http_response *r, const char *name,
			  const char *want, bool prefix, const char *what)
{
	char val[256], q[256];
	const char *v;

	v = http_header(r, name, val, sizeof(val));
	ck_assert_msg(v && (prefix ? !strncasecmp(v, want, strlen(want)) :
			    !strcasecmp(v, want)),
		      "%s: %s: header %s is %s, want %s%s; head %s", st->name, what, name,
		      v ? v : "(absent)", want, prefix ? "..." : "",
		      quote_bytes(r->raw, r->header_len, q, sizeof(q)));
}

static void assert_ok_body(const struct http_response *r, const char *body,
			   const char *what)
{
	char line[128], q[256];

	ck_assert_msg(r->status == 200, "%s: %s: status line \"%s\", want 200", st->name,
		      what, http_status_line(r, line, sizeof(line)));
	ck_assert_msg(r->body_len == strlen(body) && !memcmp(r->body, body, r->body_len),
		      "%s: %s: body %s, want %s", st->name, what,
		      quote_bytes(r->body, r->body_len, q, sizeof(q)), body);
}

/*
 * An error must be a complete response (by Content-Length, text/plain,
 * non-empty body) and the server must close the connection after it.
 */
static void expect_error(const char *req, size_t len, const char *status_line)
{
	struct http_response r = { 0 };
	char line[128], what[320], q[256];

	snprintf(what, sizeof(what), "request %s", quote_bytes(req, len, q, sizeof(q)));
	exchange(req, len, READ_TO_EOF, &r);
	ck_assert_msg(!strcmp(http_status_line(&r, line, sizeof(line)), status_line),
		      "%s: %s: status line \"%s\", want \"%s\"", st->name, what, line,
		      status_line);
	assert_header(&r, "Content-Type", "text/plain", true, what);
	assert_header(&r, "Connection", "close", false, what);
	ck_assert_msg(r.content_length > 0 && r.body_len == (size_t)r.content_length,
		      "%s: %s: Content-Length %ld but %zu body bytes before close", st->name,
		      what, r.content_length, r.body_len);
	http_response_free(&r);
}

/* ---- tcase http ------------------------------------------------------ */

/*
 * Read the answer to GET / with Connection: close on @fd until the server
 * closes: the step's bytes exactly.  Closes @fd.
 */
static void read_root_exact(int fd, const char *what)
{
	struct http_response r = { 0 };
	int ret;

	ret = http_read(fd, READ_TO_EOF, IO_TIMEOUT_MS, &r);
	ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
	close(fd);
	assert_exact(&r, root_response(), what);
	http_response_free(&r);
}

/* GET / with Connection: close on a new connection, answered exactly. */
static void get_root_exact(const char *what)
{
	int fd = connect_or_fail();

	send_or_fail(fd, REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), what);
	read_root_exact(fd, what);
}

START_TEST(get_root_exact_bytes)
{
	start_step(_i, NULL);
	get_root_exact("GET / with Connection: close");
}
END_TEST

START_TEST(get_root_http10)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	struct http_response r = { 0 };

	start_step(_i, NULL);
	exchange(req, strlen(req), READ_BY_LENGTH, &r);
	assert_ok_body(&r, NICE_DAY, "HTTP/1.0 GET /");
	assert_header(&r, "Content-Type", "text/plain", false, "HTTP/1.0 GET /");
	http_response_free(&r);
}
END_TEST

/* @req on a connection of its own: GET /'s body, then the server closes. */
static void get_root_then_close(const char *req, const char *what)
{
	struct http_response r = { 0 };

	exchange(req, strlen(req), READ_TO_EOF, &r);
	ck_assert_msg(r.eof, "%s: %s: no close after the response", st->name, what);
	assert_ok_body(&r, NICE_DAY, what);
	assert_header(&r, "Connection", "close", false, what);
	http_response_free(&r);
}

START_TEST(closes_after_response)
{
	start_step(_i, NULL);
	/* No Connection header: closing is the server's own choice here. */
	get_root_then_close(REQ_ROOT, "GET / without Connection header");
}
END_TEST

START_TEST(keep_alive_reuses_connection)
{
	struct http_response r = { 0 };
	char what[64];
	int fd, i, ret;

	start_step(_i, NULL);
	fd = connect_or_fail();
	for (i = 0; i < 3; i++) {
		snprintf(what, sizeof(what), "request %d on one connection", i + 1);
		send_or_fail(fd, REQ_ROOT, strlen(REQ_ROOT), what);
		ret = http_read(fd, READ_BY_LENGTH, IO_TIMEOUT_MS, &r);
		ck_assert_msg(ret == 0, "%s: %s: %s", st->name, what, harness_error());
		ck_assert_msg(!r.eof, "%s: %s: server closed a keep-alive connection",
			      st->name, what);
		assert_ok_body(&r, NICE_DAY, what);
		assert_header(&r, "Connection", "keep-alive", false, what);
		http_response_free(&r);
	}
	close(fd);
}
END_TEST

START_TEST(keep_alive_honours_close)
{
	start_step(_i, NULL);
	get_root_then_close(REQ_ROOT_CLOSE, "GET / with Connection: close");
}
END_TEST

/* GET /large on a connection of its own: @want bytes of the text. */
static void get_large(size_t want, const char *what)
{
	struct http_response r = { 0 };

	exchange(REQ_LARGE, strlen(REQ_LARGE), step_mode(), &r);
	assert_large(&r, want, what);
	http_response_free(&r);
}

START_TEST(large_default_size)
{
	start_step(_i, NULL);
	get_large(DEFAULT_LARGE, "GET /large with the default size");
}
END_TEST

START_TEST(large_custom_size)
{
	static const char *const args[] = { "-l", "100000", NULL };

	start_step(_i, args);
	/* 100000 is not a multiple of 17: the text is cut mid-line. */
	get_large(100000, "GET /large with -l 100000");
}
END_TEST

START_TEST(large_small_size)
{
	static const char *const args[] = { "-l", "5", NULL };

	start_step(_i, args);
	get_large(5, "GET /large with -l 5");
}
END_TEST

START_TEST(large_slow_reader)
{
	static const char *const args[] = { "-l", "300000", NULL };
	struct http_response r = { 0 };
	int fd, ret, small = 16384;

	start_step(_i, args);
	fd = connect_or_fail();
	/*
	 * A small receive window, a pause and a slow reader force the
	 * server's sends to come back short; it must carry on where they
	 * stopped.
	 */
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	send_or_fail(fd, REQ_LARGE, strlen(REQ_LARGE), "GET /large");
	sleep_ms(100);
	ret = http_read_slow(fd, step_mode(), 10000, 16384, 1000, &r);
	ck_assert_msg(ret == 0, "%s: slow reader: %s", st->name, harness_error());
	close(fd);
	assert_large(&r, 300000, "GET /large read slowly");
	http_response_free(&r);
}
END_TEST

/*
 * expect_error() for each request @fmt makes of one of the @n @parts, and
 * the server still runs after them all.
 */
static void expect_errors(const char *fmt, const char *const *parts, size_t n,
			  const char *status_line)
{
	char req[128];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(req, sizeof(req), fmt, parts[i]);
		expect_error(req, strlen(req), status_line);
	}
	assert_running();
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(not_found_404)
{
	static const char *const paths[] = { "/nope", "/index.html", "/large/", "/largex",
					     "//", "/LARGE" };

	start_step(_i, NULL);
	expect_errors("GET %s HTTP/1.1\r\n" HOST_HDR "\r\n", paths, ARRAY_SIZE(paths),
		      "HTTP/1.1 404 Not Found");
}
END_TEST

/*
 * The absolute form, "GET http://host/path HTTP/1.1" (RFC 9112 section
 * 3.2.2: a server MUST accept it), routes on the path after the authority.
 */
START_TEST(absolute_form_routes)
{
	static const char *const roots[] = { "http://127.0.0.1:8000/?a=1", "http://127.0.0.1/",
					     "HTTP://localhost", "https://example.com?x=/large" };
	struct http_response r = { 0 };
	char req[160], what[96];
	size_t i;

	start_step(_i, NULL);
	for (i = 0; i < ARRAY_SIZE(roots); i++) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n" HOST_HDR "\r\n", roots[i]);
		snprintf(what, sizeof(what), "GET %s", roots[i]);
		exchange(req, strlen(req), step_mode(), &r);
		assert_ok_body(&r, NICE_DAY, what);
		http_response_free(&r);
	}
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/large HTTP/1.1\r\n" HOST_HDR "\r\n",
		 (unsigned int)srv.port);
	exchange(req, strlen(req), step_mode(), &r);
	assert_large(&r, DEFAULT_LARGE, "GET http://127.0.0.1:PORT/large");
	http_response_free(&r);
	expect_errors("GET %s HTTP/1.1\r\n" HOST_HDR "\r\n",
		      (const char *const[]){ "http://127.0.0.1/nope" }, 1, "HTTP/1.1 404 Not Found");
}
END_TEST

START_TEST(absolute_form_malformed_400)
{
	/* Neither "/path" nor "scheme://authority[/path]" (nor "*"). */
	static const char *const targets[] = {
		"http:/127.0.0.1/",	/* one slash */
		"http://",		/* no authority */
		"http:///",		/* empty authority */
		"http://user@127.0.0.1/", /* userinfo */
		"1http://127.0.0.1/",	/* a scheme starts with a letter */
		"ht_tp://127.0.0.1/",	/* not a scheme character */
		"127.0.0.1/",		/* no scheme */
		"large",		/* no leading slash */
	};

	start_step(_i, NULL);
	expect_errors("GET %s HTTP/1.1\r\n" HOST_HDR "\r\n", targets, ARRAY_SIZE(targets),
		      "HTTP/1.1 400 Bad Request");
}
END_TEST

START_TEST(method_405)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };

	start_step(_i, NULL);
	expect_errors("%s / HTTP/1.1\r\n" HOST_HDR "Content-Length: 0\r\n\r\n", methods,
		      ARRAY_SIZE(methods), "HTTP/1.1 405 Method Not Allowed");
}
END_TEST

START_TEST(bad_request_line_400)
{
	/* Each is a request line that breaks "METHOD SP TARGET SP HTTP/1.x". */
	static const char *const lines[] = {
		"GET /",		/* no version */
		"GET",			/* method only */
		"GET  / HTTP/1.1",	/* two spaces */
		" GET / HTTP/1.1",	/* leading space */
		"GET / HTTP/1.1 ",	/* trailing space */
		"GET\t/ HTTP/1.1",	/* tab for a space */
		"GET /a b HTTP/1.1",	/* space inside the target */
		"GET / HTTP/2.0",	/* not HTTP/1.x */
		"GET / HTTP/1.",	/* truncated version */
		"GET / http/1.1",	/* the protocol name is case-sensitive */
		"GET / FOO/1.1",
		"GET /\x01 HTTP/1.1",	/* control byte in the target */
		"GET /\xff HTTP/1.1",	/* non-ASCII in the target */
		"GE\x7fT / HTTP/1.1",	/* DEL in the method */
		"G(T / HTTP/1.1",	/* not a token character */
	};

	start_step(_i, NULL);
	expect_errors("%s\r\n" HOST_HDR "\r\n", lines, ARRAY_SIZE(lines),
		      "HTTP/1.1 400 Bad Request");
}
END_TEST

START_TEST(headers_too_large_431)
{
	char *req;

	start_step(_i, NULL);
	req = request_of_size(9000);
	expect_error(req, 9000, "HTTP/1.1 431 Request Header Fields Too Large");
	free(req);
	assert_running();
}
END_TEST

START_TEST(header_limit_boundary)
{
	struct http_response r = { 0 };
	char *req;

	start_step(_i, NULL);
	/* The limit counts the final CRLFCRLF: 8192 fits, 8193 does not. */
	req = request_of_size(HEADER_LIMIT);
	exchange(req, HEADER_LIMIT, step_mode(), &r);
	assert_ok_body(&r, NICE_DAY, "8192-byte request head");
	http_response_free(&r);
	free(req);
	req = request_of_size(HEADER_LIMIT + 1);
	expect_error(req, HEADER_LIMIT + 1, "HTTP/1.1 431 Request Header Fields Too Large");
	free(req);
	assert_running();
}
END_TEST

START_TEST(request_one_byte_at_a_time)
{
	int fd, ret;

	start_step(_i, NULL);
	fd = connect_or_fail();
	ret = send_bytewise(fd, REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), 1000);
	ck_assert_msg(ret == 0, "%s: sending byte by byte: %s", st->name, harness_error());
	read_root_exact(fd, "GET / sent one byte at a time");
}
END_TEST

START_TEST(request_split_before_terminator)
{
	static const char part1[] = "GET / HTTP/1.1\r\n" HOST_HDR "Connection: close\r\n\r";
	int fd;

	start_step(_i, NULL);
	fd = connect_or_fail();
	send_or_fail(fd, part1, strlen(part1), "GET / up to its final LF");
	/* Long enough for the server to have read the first part alone. */
	sleep_ms(50);
	send_or_fail(fd, "\n", 1, "the final LF");
	read_root_exact(fd, "GET / split inside the final CRLFCRLF");
}
END_TEST

START_TEST(bind_address_option)
{
	static const char *const args[] = { "-a", "127.0.0.2", NULL };
	struct http_response r = { 0 };
	int fd, ret;

	use_step(_i);
	start_server_at(args, "127.0.0.2");
	fd = tcp_connect_addr("127.0.0.2", srv.port, IO_TIMEOUT_MS);
	ck_assert_msg(fd >= 0, "%s: -a 127.0.0.2: %s", st->name, harness_error());
	send_or_fail(fd, REQ_ROOT_CLOSE, strlen(REQ_ROOT_CLOSE), "GET / on 127.0.0.2");
	ret = http_read(fd, READ_TO_EOF, IO_TIMEOUT_MS, &r);
	ck_assert_msg(ret == 0, "%s: -a 127.0.0.2: %s", st->name, harness_error());
	close(fd);
	assert_ok_body(&r, NICE_DAY, "GET / on 127.0.0.2");
	http_response_free(&r);
	/* Bound to one address only: the same port on 127.0.0.1 is closed. */
	fd = tcp_connect(srv.port, IO_TIMEOUT_MS);
	if (fd >= 0)
		close(fd);
	ck_assert_msg(fd < 0, "%s: -a 127.0.0.2 also accepts on 127.0.0.1", st->name);
}
END_TEST

START_TEST(spin_option_serves)
{
	static const char *const args[] = { "-s", "50", NULL };

	start_step(_i, args);
	get_root_exact("GET / with -s 50");
}
END_TEST

/* ---- tcase options --------------------------------------------------- */

START_TEST(bad_options_exit_2)
{
	/* "-p 0" keeps a server that wrongly starts off the default port. */
	static const char *const cases[][6] = {
		{ "-p", "0", "-x", NULL },
		{ "-p", "0", "extra-argument", NULL },
		{ "-p", "abc", NULL },
		{ "-p", "70000", NULL },
		{ "-p", "-1", NULL },
		{ "-p", "80x", NULL },
		{ "-p", NULL },
		{ "-p", "0", "-l", "abc", NULL },
		{ "-p", "0", "-l", "-5", NULL },
		{ "-p", "0", "-a", "not-an-address", NULL },
		{ "-p", "0", "-a", "127.0.0.256", NULL },
	};
	static const char *const spin_bad[] = { "-p", "0", "-s", "abc", NULL };
	static const char *const spin_unknown[] = { "-p", "0", "-s", "100", NULL };
	char out[1024], err[1024], status[64], cmd[256];
	const char *const *args;
	size_t i, n = sizeof(cases) / sizeof(cases[0]);
	int ret, wstatus, k;

	use_step(_i);
	for (i = 0; i <= n; i++) {
		if (i < n)
			args = cases[i];
		else
			args = st->takes_spin ? spin_bad : spin_unknown;
		cmd[0] = '\0';
		for (k = 0; args[k]; k++)
			snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %s", args[k]);
		ret = run_to_exit(server_path, args, 2000, &wstatus, out, sizeof(out),
				  err, sizeof(err));
		ck_assert_msg(ret == 0, "%s: server%s: %s", st->name, cmd, harness_error());
		ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 2,
			      "%s: server%s: %s, want exit 2; stderr: %s", st->name, cmd,
			      wstatus_str(wstatus, status, sizeof(status)), err);
		ck_assert_msg(strcasestr(err, "usage"),
			      "%s: server%s: no usage on stderr; stderr: %s", st->name, cmd,
			      err);
	}
}
END_TEST

START_TEST(help_option)
{
	static const char *const args[] = { "-h", NULL };
	char out[1024], err[1024], status[64];
	int ret, wstatus;

	use_step(_i);
	ret = run_to_exit(server_path, args, 2000, &wstatus, out, sizeof(out), err,
			  sizeof(err));
	ck_assert_msg(ret == 0, "%s: server -h: %s", st->name, harness_error());
	ck_assert_msg(WIFEXITED(wstatus) &&
		      (WEXITSTATUS(wstatus) == 0 || WEXITSTATUS(wstatus) == 2),
		      "%s: server -h: %s, want exit 0 (or 2)", st->name,
		      wstatus_str(wstatus, status, sizeof(status)));
	ck_assert_msg(strcasestr(out, "usage") || strcasestr(err, "usage"),
		      "%s: server -h printed no usage; stdout: %s; stderr: %s", st->name,
		      out, err);
}
END_TEST

/* ---- tcase lifecycle ------------------------------------------------- */

/* One request first, so that the stop is not only tested on a cold server. */
static void serve_one(void)
{
	struct http_response r = { 0 };

	exchange(REQ_ROOT, strlen(REQ_ROOT), step_mode(), &r);
	assert_ok_body(&r, NICE_DAY, "GET /");
	http_response_free(&r);
}

START_TEST(stop_sigint_idle)
{
	start_step(_i, NULL);
	serve_one();
	stop_server(SIGINT, "SIGINT when idle");
}
END_TEST

START_TEST(stop_sigterm_idle)
{
	start_step(_i, NULL);
	serve_one();
	stop_server(SIGTERM, "SIGTERM when idle");
}
END_TEST

START_TEST(stop_sigint_before_any_request)
{
	start_step(_i, NULL);
	stop_server(SIGINT, "SIGINT right after start");
}
END_TEST

START_TEST(stop_with_open_connections)
{
	static const char partial[] = "GET / HTTP/1.1\r\nHo";
	int fd_partial, fd_silent;

	start_step(_i, NULL);
	fd_silent = connect_or_fail();
	fd_partial = connect_or_fail();
	send_or_fail(fd_partial, partial, strlen(partial), "half a head");
	/* Let the server accept and block reading them before the signal. */
	sleep_ms(100);
	stop_server(SIGINT, "SIGINT with a silent and a half-sent request open");
	close(fd_partial);
	close(fd_silent);
}
END_TEST

/*
 * Runs in a child: requests in a loop until the server goes away or 5 s
 * pass, writing one byte to @ready_fd after the first good response.
 */
static void load_loop(uint16_t port, int clients, int ready_fd)
{
	struct http_response r[MANY_CLIENTS];
	long long end = now_ms() + 5000;
	bool told = false;
	int i, got, failures = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (now_ms() < end && failures < 20) {
		memset(r, 0, sizeof(r));
		got = http_many(port, REQ_ROOT, clients, READ_BY_LENGTH, 2000, r);
		for (i = 0; i < clients; i++)
			http_response_free(&r[i]);
		if (got <= 0) {
			failures++;
			sleep_ms(10);
			continue;
		}
		if (!told)
			told = write(ready_fd, "x", 1) == 1;
	}
	_exit(0);
}

START_TEST(stop_sigint_under_load)
{
	int pipefd[2], clients;

	start_step(_i, NULL);
	clients = st->concurrent ? 20 : 2;
	ck_assert_int_eq(pipe(pipefd), 0);
	if (fork_load() == 0) {
		close(pipefd[0]);
		load_loop(srv.port, clients, pipefd[1]);
	}
	close(pipefd[1]);
	wait_load_flowing(pipefd[0], "the load");
	close(pipefd[0]);
	sleep_ms(100);
	stop_server(SIGINT, "SIGINT under load");
}
END_TEST

/* ---- tcase load ------------------------------------------------------ */

START_TEST(many_concurrent_clients)
{
	struct http_response r[MANY_CLIENTS];
	char what[64];
	int got, i;

	start_step(_i, NULL);
	memset(r, 0, sizeof(r));
	got = http_many(srv.port, REQ_ROOT, MANY_CLIENTS, step_mode(), 10000, r);
	ck_assert_msg(got == MANY_CLIENTS, "%s: %d of %d concurrent clients answered: %s",
		      st->name, got, MANY_CLIENTS, harness_error());
	for (i = 0; i < MANY_CLIENTS; i++) {
		snprintf(what, sizeof(what), "concurrent client %d", i);
		assert_ok_body(&r[i], NICE_DAY, what);
		http_response_free(&r[i]);
	}
	assert_running();
}
END_TEST

START_TEST(concurrent_large)
{
	static const char *const args[] = { "-l", "200000", NULL };
	struct http_response r[10];
	char what[64];
	int got, i;

	start_step(_i, args);
	memset(r, 0, sizeof(r));
	got = http_many(srv.port, REQ_LARGE, 10, step_mode(), 10000, r);
	ck_assert_msg(got == 10, "%s: %d of 10 concurrent /large clients answered: %s",
		      st->name, got, harness_error());
	for (i = 0; i < 10; i++) {
		snprintf(what, sizeof(what), "concurrent /large client %d", i);
		assert_large(&r[i], 200000, what);
		http_response_free(&r[i]);
	}
}
END_TEST

START_TEST(slow_client_does_not_block_others)
{
	static const char partial[] = "GET / HTTP/1.1\r\nHo";
	struct http_response r = { 0 };
	int fd_partial, fd_silent;
	long long start;
	long took;

	start_step(_i, NULL);
	fd_silent = connect_or_fail();
	fd_partial = connect_or_fail();
	send_or_fail(fd_partial, partial, strlen(partial), "half a head");
	sleep_ms(50);
	start = now_ms();
	exchange(REQ_ROOT, strlen(REQ_ROOT), step_mode(), &r);
	took = (long)(now_ms() - start);
	assert_ok_body(&r, NICE_DAY, "GET / while two clients stall");
	ck_assert_msg(took < 1000, "%s: GET / took %ld ms while two clients stalled",
		      st->name, took);
	http_response_free(&r);
	close(fd_partial);
	close(fd_silent);
}
END_TEST

START_TEST(silent_client_times_out)
{
	struct http_response r = { 0 };
	int fd_silent, fd, ret;
	long long start;

	start_step(_i, NULL);
	/* A one-at-a-time server must not wait forever for a silent client. */
	fd_silent = connect_or_fail();
	sleep_ms(50);
	start = now_ms();
	fd = connect_or_fail();
	send_or_fail(fd, REQ_ROOT, strlen(REQ_ROOT), "GET / behind a silent client");
	ret = http_read(fd, step_mode(), 8000, &r);
	ck_assert_msg(ret == 0, "%s: GET / behind a silent client: %s", st->name,
		      harness_error());
	assert_ok_body(&r, NICE_DAY, "GET / behind a silent client");
	printf("%s: served %lld ms after a silent client\n", st->name, now_ms() - start);
	http_response_free(&r);
	close(fd);
	close(fd_silent);
}
END_TEST

START_TEST(no_fd_leak)
{
	struct http_response r = { 0 };
	int base, count = -1, i;
	long long deadline;

	start_step(_i, NULL);
	/* Anything opened lazily on the first request belongs to the baseline. */
	for (i = 0; i < 3; i++) {
		exchange(REQ_ROOT, strlen(REQ_ROOT), step_mode(), &r);
		http_response_free(&r);
	}
	sleep_ms(50);
	base = proc_fd_count(srv.pid);
	ck_assert_msg(base > 0, "%s: %s", st->name, harness_error());
	for (i = 0; i < FD_LEAK_CONNECTIONS; i++) {
		if (http_exchange(srv.port, REQ_ROOT, strlen(REQ_ROOT), step_mode(), &r))
			ck_abort_msg("%s: connection %d: %s", st->name, i, harness_error());
		if (r.status != 200)
			ck_abort_msg("%s: connection %d: status %d", st->name, i, r.status);
		http_response_free(&r);
	}
	/* Closing may finish asynchronously (io_uring): give it up to 1 s. */
	deadline = now_ms() + 1000;
	do {
		count = proc_fd_count(srv.pid);
		ck_assert_msg(count > 0, "%s: %s", st->name, harness_error());
		if (count <= base)
			break;
		sleep_ms(20);
	} while (now_ms() < deadline);
	ck_assert_msg(count <= base, "%s: %d open fds after %d connections, %d before",
		      st->name, count, FD_LEAK_CONNECTIONS, base);
}
END_TEST

/* ---- tcase budget ---------------------------------------------------- */

/*
 * @n requests, one at a time, the way the step is meant to be used.
 * Measured loops avoid passing ck_assert calls: in fork mode each one
 * writes a location record, and a slower client changes how the server
 * batches completions and when a spinning server gives up and sleeps.
 */
static void sequential_requests(int n)
{
	struct http_response r = { 0 };
	int fd = -1, i, ret = 0;

	if (st->keep_alive) {
		fd = tcp_connect(srv.port, IO_TIMEOUT_MS);
		if (fd < 0)
			ck_abort_msg("%s: %s", st->name, harness_error());
	}
	for (i = 0; i < n && !ret; i++) {
		if (st->keep_alive) {
			ret = send_all(fd, REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS);
			if (!ret)
				ret = http_read(fd, READ_BY_LENGTH, IO_TIMEOUT_MS, &r);
		} else {
			ret = http_exchange(srv.port, REQ_ROOT, strlen(REQ_ROOT),
					    READ_TO_EOF, &r);
		}
		if (ret)
			ck_abort_msg("%s: request %d: %s", st->name, i, harness_error());
		if (r.status != 200)
			ck_abort_msg("%s: request %d: status %d", st->name, i, r.status);
		http_response_free(&r);
	}
	if (fd >= 0)
		close(fd);
}

/*
 * The current clocksource, into @buf ("" if unknown). On x86 the vDSO reads
 * only tsc, kvm-clock and the Hyper-V TSC page (VDSO_ARCH_CLOCKMODES in
 * arch/x86/include/asm/clocksource.h); on any other, such as the hpet a VM
 * under QEMU's TCG gets with Debian's 6.1, strace counts every
 * clock_gettime() as a syscall (measured: 1223 in 200 requests of step 05).
 */
static const char *clocksource(char *buf, size_t size)
{
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)size, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool vdso_clock(const char *cs)
{
	return !*cs || !strcmp(cs, "tsc") || !strcmp(cs, "kvm-clock") ||
	       !strcmp(cs, "hyperv_clocksource_tsc_page");
}

/*
 * Start a server with @args, warm it up, count its syscalls over @n
 * sequential requests. Returns syscalls per request, or -1 after printing
 * SKIP when strace cannot trace here.
 */
static double measure_syscalls(const char *const *args, int n, char *table,
			       size_t table_size)
{
	char why[256];
	long calls = 0;
	int ret;

	start_server(args);
	sequential_requests(5);
	ret = strace_start(&tracer, srv.pid, why, sizeof(why));
	if (ret == 1) {
		printf("SKIP: %s: syscall budget not measured: %s\n", st->name, why);
		return -1;
	}
	ck_assert_msg(ret == 0, "%s: strace: %s", st->name, harness_error());
	sequential_requests(n);
	ret = strace_finish(&tracer, &calls, table, table_size);
	ck_assert_msg(ret == 0, "%s: strace: %s", st->name, harness_error());
	return (double)calls / n;
}

/* Stop the first measured server so that the next starts from scratch. */
static void stop_measured_server(void)
{
	stop_server(SIGINT, "stopping the server measured with default options");
	strace_cleanup(&tracer);
	server_cleanup(&srv);
	fixture_setup();
}

/*
 * The budgets are about the server's I/O: io_uring_enter() and the socket
 * calls. The servers also read the clock (the spin, the sweep's
 * deadlines), a syscall only where the clocksource has no vDSO read;
 * there the clock's calls say nothing about the server. Returns
 * @per_request less the clock's share of @n requests, and says so.
 */
static double less_clock_calls(const char *table, int n, double per_request)
{
	long clock_calls = strace_calls_of(table, "clock_gettime");
	char cs[64];

	if (!clock_calls || vdso_clock(clocksource(cs, sizeof(cs))))
		return per_request;
	printf("%s: clocksource %s has no vDSO read: its %ld clock_gettime() syscalls say nothing about the server; the budget counts the other %.2f per request\n",
	       st->name, cs, clock_calls, per_request - (double)clock_calls / n);
	return per_request - (double)clock_calls / n;
}

START_TEST(syscall_budget)
{
	char table[8192], opts[64] = "";
	double per_request;
	int n;

	use_step(_i);
	n = st->keep_alive ? SYSCALL_REQUESTS_KEEP_ALIVE : SYSCALL_REQUESTS;
	if (st->budget_args) {
		/* For information: the default options, on this machine. */
		per_request = measure_syscalls(NULL, n, table, sizeof(table));
		if (per_request < 0)
			return;
		printf("%s: %.2f syscalls per request with default options (%.0f in %d requests; information only)\n",
		       st->name, per_request, per_request * n, n);
		stop_measured_server();
		snprintf(opts, sizeof(opts), " with %s %s", st->budget_args[0],
			 st->budget_args[1]);
	}
	per_request = measure_syscalls(st->budget_args, n, table, sizeof(table));
	if (per_request < 0)
		return;
	printf("%s: %.2f syscalls per request%s (%.0f in %d requests; budget %g)\n",
	       st->name, per_request, opts, per_request * n, n, st->syscall_budget);
	per_request = less_clock_calls(table, n, per_request);
	if (per_request > st->syscall_budget || getenv("SHOW_STRACE"))
		printf("%s: strace -c over %d requests:\n%s", st->name, n, table);
	ck_assert_msg(per_request <= st->syscall_budget,
		      "%s: %.2f syscalls per request over %d requests%s, budget %g",
		      st->name, per_request, n, opts, st->syscall_budget);
}
END_TEST

/*
 * A closed-loop load: @nconns kept-alive connections, each sending its
 * next GET / as soon as the answer to its last is in, until @n requests
 * are answered. Every answer to REQ_ROOT has the same length, that of the
 * first, so counting bytes tells them apart. Returns the requests answered.
 */
static int closed_loop_load(int nconns, int n)
{
	struct pollfd pfd[LOAD_CONNECTIONS];
	size_t pending[LOAD_CONNECTIONS], resp_len;
	struct http_response r;
	int i, answered = 0, sent = 0;
	long long deadline;
	char buf[65536];
	ssize_t k;

	ck_assert_int_le(nconns, LOAD_CONNECTIONS);
	for (i = 0; i < nconns; i++) {
		pfd[i].fd = connect_or_fail();
		pfd[i].events = POLLIN;
		pending[i] = 0;
	}
	request_on(pfd[0].fd, REQ_ROOT, &r, "the first request of the load");
	ck_assert_msg(r.status == 200, "%s: the first request of the load: status %d",
		      st->name, r.status);
	resp_len = r.raw_len;
	http_response_free(&r);
	for (i = 0; i < nconns; i++) {
		if (send_all(pfd[i].fd, REQ_ROOT, strlen(REQ_ROOT), IO_TIMEOUT_MS))
			ck_abort_msg("%s: load: %s", st->name, harness_error());
		sent++;
	}
	deadline = now_ms() + LOAD_TIMEOUT_MS;
	while (answered < n) {
		if (poll(pfd, (nfds_t)nconns, IO_TIMEOUT_MS) <= 0 || now_ms() > deadline)
			ck_abort_msg("%s: load: %d of %d requests answered, then nothing",
				     st->name, answered, n);
		for (i = 0; i < nconns; i++) {
			if (!pfd[i].revents)
				continue;
			k = recv(pfd[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (k <= 0)
				ck_abort_msg("%s: load: connection %d: %s", st->name, i,
					     k ? strerror(errno) : "closed by the server");
			pending[i] += (size_t)k;
			while (pending[i] >= resp_len) {
				pending[i] -= resp_len;
				answered++;
				if (sent < n) {
					if (send_all(pfd[i].fd, REQ_ROOT, strlen(REQ_ROOT),
						     IO_TIMEOUT_MS))
						ck_abort_msg("%s: load: %s", st->name,
							     harness_error());
					sent++;
				}
			}
		}
	}
	for (i = 0; i < nconns; i++)
		close(pfd[i].fd);
	return answered;
}

/*
 * Batching is the point of a server that sleeps in the kernel between
 * batches: under load each wait must bring many completions.
 */
START_TEST(syscall_budget_under_load)
{
	double per_request, secs;
	char table[8192], why[256];
	long calls = 0;
	long long t0;
	int ret;

	start_step(_i, NULL);
	closed_loop_load(LOAD_CONNECTIONS, 500);
	ret = strace_start(&tracer, srv.pid, why, sizeof(why));
	if (ret == 1) {
		printf("SKIP: %s: syscalls under load not measured: %s\n", st->name, why);
		return;
	}
	ck_assert_msg(ret == 0, "%s: strace: %s", st->name, harness_error());
	t0 = now_ms();
	closed_loop_load(LOAD_CONNECTIONS, LOAD_REQUESTS);
	secs = (double)(now_ms() - t0) / 1000;
	ret = strace_finish(&tracer, &calls, table, sizeof(table));
	ck_assert_msg(ret == 0, "%s: strace: %s", st->name, harness_error());
	per_request = (double)calls / LOAD_REQUESTS;
	printf("%s: %.3f syscalls per request under load (%ld in %d requests on %d connections, %.0f requests/s under strace; budget %g)\n",
	       st->name, per_request, calls, LOAD_REQUESTS, LOAD_CONNECTIONS,
	       LOAD_REQUESTS / secs, st->load_budget);
	per_request = less_clock_calls(table, LOAD_REQUESTS, per_request);
	if (per_request > st->load_budget || getenv("SHOW_STRACE"))
		printf("%s: strace -c under load:\n%s", st->name, table);
	ck_assert_msg(per_request <= st->load_budget,
		      "%s: %.3f syscalls per request under load, budget %g",
		      st->name, per_request, st->load_budget);
}
END_TEST

/* The CPU @pid uses over @ms, in percent of a core. */
static double cpu_pct_over(long ms)
{
	double cpu0, cpu1;
	long long t0, t1;

	cpu0 = proc_cpu_seconds(srv.pid);
	t0 = now_ms();
	ck_assert_msg(cpu0 >= 0, "%s: %s", st->name, harness_error());
	sleep_ms(ms);
	cpu1 = proc_cpu_seconds(srv.pid);
	t1 = now_ms();
	ck_assert_msg(cpu1 >= 0, "%s: %s", st->name, harness_error());
	return (cpu1 - cpu0) * 100000.0 / (double)(t1 - t0);
}

/*
 * Idle kept-alive connections are no work: nothing spins for them, and
 * their sweep sleeps until the first is due (-t, 30 s by default).
 */
START_TEST(idle_cpu_with_idle_connections)
{
	struct http_response r;
	int fds[IDLE_CONNECTIONS], i;
	double pct;

	start_step(_i, NULL);
	for (i = 0; i < IDLE_CONNECTIONS; i++) {
		fds[i] = connect_or_fail();
		request_on(fds[i], REQ_ROOT, &r, "a request before idling");
		http_response_free(&r);
	}
	sleep_ms(500);
	pct = cpu_pct_over(2000);
	printf("%s: idle CPU %.1f%% of a core with %d idle kept-alive connections (limit %g%%)\n",
	       st->name, pct, IDLE_CONNECTIONS, IDLE_CPU_LIMIT_PCT);
	ck_assert_msg(pct < IDLE_CPU_LIMIT_PCT,
		      "%s: idle CPU %.1f%% of a core with %d idle connections, limit %g%%",
		      st->name, pct, IDLE_CONNECTIONS, IDLE_CPU_LIMIT_PCT);
	for (i = 0; i < IDLE_CONNECTIONS; i++) {
		request_on(fds[i], REQ_ROOT, &r, "a request after idling");
		ck_assert_msg(r.status == 200, "%s: after idling: status %d", st->name,
			      r.status);
		http_response_free(&r);
		close(fds[i]);
	}
}
END_TEST

START_TEST(idle_cpu)
{
	struct http_response r[10];
	double cpu0, cpu1, pct;
	long long t0, t1;
	int got, i;

	start_step(_i, NULL);
	/* Wake everything up first: an idle test of a cold server proves little. */
	sequential_requests(20);
	if (st->concurrent) {
		memset(r, 0, sizeof(r));
		got = http_many(srv.port, REQ_ROOT, 10, step_mode(), 10000, r);
		for (i = 0; i < 10; i++)
			http_response_free(&r[i]);
		ck_assert_msg(got == 10, "%s: %s", st->name, harness_error());
	}
	/* Spinning may go on briefly after the load (e.g. SQ thread idle time). */
	sleep_ms(2000);
	cpu0 = proc_cpu_seconds(srv.pid);
	t0 = now_ms();
	ck_assert_msg(cpu0 >= 0, "%s: %s", st->name, harness_error());
	sleep_ms(2000);
	cpu1 = proc_cpu_seconds(srv.pid);
	t1 = now_ms();
	ck_assert_msg(cpu1 >= 0, "%s: %s", st->name, harness_error());
	pct = (cpu1 - cpu0) * 100000.0 / (double)(t1 - t0);
	printf("%s: idle CPU %.1f%% of a core (limit %g%%)\n", st->name, pct,
	       IDLE_CPU_LIMIT_PCT);
	ck_assert_msg(pct < IDLE_CPU_LIMIT_PCT,
		      "%s: idle CPU %.1f%% of a core over %lld ms, limit %g%%", st->name,
		      pct, t1 - t0, IDLE_CPU_LIMIT_PCT);
	assert_running();
}
END_TEST

/* ---- suites ---------------------------------------------------------- */

static Suite *step_suite(int idx)
{
	const struct step *sp = &steps[idx];
	Suite *s = step_suite_create(idx, NULL, repo_root);
	TCase *tc;

	tc = new_tcase(s, "http", 30);
	ADD(tc, get_root_exact_bytes);
	ADD(tc, get_root_http10);
	if (sp->keep_alive) {
		ADD(tc, keep_alive_reuses_connection);
		ADD(tc, keep_alive_honours_close);
	} else {
		ADD(tc, closes_after_response);
	}
	ADD(tc, large_default_size);
	ADD(tc, large_custom_size);
	ADD(tc, large_small_size);
	ADD(tc, large_slow_reader);
	ADD(tc, not_found_404);
	ADD(tc, absolute_form_routes);
	ADD(tc, absolute_form_malformed_400);
	ADD(tc, method_405);
	ADD(tc, bad_request_line_400);
	ADD(tc, headers_too_large_431);
	ADD(tc, header_limit_boundary);
	ADD(tc, request_one_byte_at_a_time);
	ADD(tc, request_split_before_terminator);
	ADD(tc, bind_address_option);
	if (sp->takes_spin)
		ADD(tc, spin_option_serves);

	tc = new_tcase(s, "options", 30);
	ADD(tc, bad_options_exit_2);
	ADD(tc, help_option);

	tc = new_tcase(s, "lifecycle", 30);
	ADD(tc, stop_sigint_idle);
	ADD(tc, stop_sigterm_idle);
	ADD(tc, stop_sigint_before_any_request);
	ADD(tc, stop_with_open_connections);
	ADD(tc, stop_sigint_under_load);

	tc = new_tcase(s, "load", 60);
	if (sp->concurrent) {
		ADD(tc, many_concurrent_clients);
		ADD(tc, concurrent_large);
		ADD(tc, slow_client_does_not_block_others);
	} else {
		ADD(tc, silent_client_times_out);
	}
	ADD(tc, no_fd_leak);

	tc = new_tcase(s, "budget", 60);
	ADD(tc, syscall_budget);
	if (sp->idle_cpu)
		ADD(tc, idle_cpu);
	if (sp->load_budget) {
		ADD(tc, syscall_budget_under_load);
		ADD(tc, idle_cpu_with_idle_connections);
	}
	return s;
}

/* STEPS="a,b c": is @name selected?  A "stepNN" prefix selects that step. */
static bool step_selected(const char *name, const char *list)
{
	const char *p = list;
	size_t len;

	if (!list || !*list)
		return true;
	while (*p) {
		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (len && !strncmp(name, p, len) && (name[len] == '\0' || name[len] == '_'))
			return true;
		p += len;
	}
	return false;
}

/* Every name in STEPS must match a row: a typo must not run nothing. */
static int check_step_list(const char *list)
{
	const char *p = list;
	size_t len, i;
	bool found;

	if (!list)
		return 0;
	while (*p) {
		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (!len)
			break;
		found = false;
		for (i = 0; i < n_steps; i++)
			if (!strncmp(steps[i].name, p, len) &&
			    (steps[i].name[len] == '\0' || steps[i].name[len] == '_'))
				found = true;
		if (!found) {
			fprintf(stderr, "run_tests: STEPS names no known step: %.*s\n",
				(int)len, p);
			return -1;
		}
		p += len;
	}
	return 0;
}

static int find_repo_root(void)
{
	const char *env = getenv("SERVER_DIR");
	char exe[PATH_MAX];
	char *slash;
	ssize_t n;
	int i;

	if (env && *env) {
		if (!realpath(env, repo_root)) {
			fprintf(stderr, "run_tests: SERVER_DIR=%s: %s\n", env, strerror(errno));
			return -1;
		}
		return 0;
	}
	/* tests/run_tests lives one level below the repository root. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		fprintf(stderr, "run_tests: readlink /proc/self/exe: %s\n", strerror(errno));
		return -1;
	}
	exe[n] = '\0';
	for (i = 0; i < 2; i++) {
		slash = strrchr(exe, '/');
		if (!slash) {
			fprintf(stderr, "run_tests: cannot find the repository above %s\n", exe);
			return -1;
		}
		*slash = '\0';
	}
	snprintf(repo_root, sizeof(repo_root), "%s", exe[0] ? exe : "/");
	return 0;
}

int main(void)
{
	const char *list = getenv("STEPS");
	SRunner *sr = NULL;
	int failed, run;
	size_t i;

	/* Lines printed by the forked tests must not be held in a buffer. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (find_repo_root() < 0 || check_step_list(list) < 0)
		return 2;
	/* Servers orphaned by a killed test come back to us to be reaped. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		perror("run_tests: prctl(PR_SET_CHILD_SUBREAPER)");

	printf("run_tests: servers under %s\n", repo_root);
	for (i = 0; i < n_steps; i++) {
		if (!step_selected(steps[i].name, list))
			continue;
		if (!sr)
			sr = srunner_create(step_suite((int)i));
		else
			srunner_add_suite(sr, step_suite((int)i));
		if (steps[i].keep_alive)
			srunner_add_suite(sr, keepalive_suite((int)i, repo_root));
		srunner_add_suite(sr, faults_suite((int)i, repo_root));
		srunner_add_suite(sr, close_suite((int)i, repo_root));
	}
	if (!sr) {
		fprintf(stderr, "run_tests: STEPS=\"%s\" selects no step\n", list);
		return 2;
	}
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	run = srunner_ntests_run(sr);
	srunner_free(sr);
	reap_orphans();
	return failed || run == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
