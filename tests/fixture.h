/* SPDX-License-Identifier: MIT */
/*
 * fixture.h - the Check fixture every suite of run_tests shares: which
 * step a test is about, its server, the checked setup and teardown, and
 * the Check-aware wrappers around harness.h that fail the test with the
 * step's name and what was being done.
 *
 * Each test is its own process (Check's fork mode), so the state below is
 * the state of the one running test: a test calls use_step(_i) (or
 * start_step()) first and then everything refers to that step's server.
 * The checked teardown kills what the test left running: a load child in
 * load_pid, strace, the server; it fails the test if the server died
 * without being stopped on purpose, or wrote a sanitizer report.
 *
 * A helper that cannot do what it says, or finds the server not doing
 * what it asserts, fails the test with ck_assert_msg()/ck_abort_msg() and
 * a message "<step>: <what>: <why>" (@what is the caller's words); only
 * root_ok(), drain() and reap_orphans() never fail.
 */
#ifndef TESTS_FIXTURE_H
#define TESTS_FIXTURE_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"
#include "steps.h"

#define HOST_HDR "Host: 127.0.0.1\r\n"
#define REQ_ROOT "GET / HTTP/1.1\r\n" HOST_HDR "\r\n"
#define REQ_ROOT_CLOSE "GET / HTTP/1.1\r\n" HOST_HDR "Connection: close\r\n\r\n"
#define REQ_LARGE "GET /large HTTP/1.1\r\n" HOST_HDR "\r\n"
#define REQ_LARGE_CLOSE "GET /large HTTP/1.1\r\n" HOST_HDR "Connection: close\r\n\r\n"
#define REQ_NOPE "GET /nope HTTP/1.1\r\n" HOST_HDR "\r\n"
/* A head cut short: the server must wait for the rest, or time out. */
#define HALF_HEAD "GET / HTTP/1.1\r\nHo"

#define DEFAULT_LARGE 1048576	/* bytes of /large without -l */
#define HEADER_LIMIT 8192	/* the longest head a server takes, CRLFCRLF included */
#define STOP_DEADLINE_MS 1000	/* SIGINT or SIGTERM to exit 0 */
#define SMALL_RCVBUF 65536	/* see small_rcvbuf() */
/* A response that says "Connection: close" is followed by the close. */
#define CLOSE_AFTER_MS 1000

/* What every step up to step05 answers to REQ_ROOT_CLOSE, byte for byte. */
extern const char canonical_root[];

/* ---- the running test ------------------------------------------------- */

extern const struct step *st;	/* the step under test, set by use_step() */
extern struct server srv;	/* its server, once started */
extern struct strace_run tracer; /* strace on it, if the test attaches one */
extern pid_t load_pid;		/* a load child of the test's, 0 if none */
extern char server_path[];	/* <repo root>/<step name>/server */

/* ---- suites ----------------------------------------------------------- */

/*
 * A suite for steps[@idx], whose server is @repo_root/<step name>/server:
 * named "<step>" when @kind is NULL and "<step>/<kind>" otherwise.
 */
Suite *step_suite_create(int idx, const char *kind, const char *repo_root);

/*
 * A tcase of @s with the checked setup and teardown described above,
 * orphans reaped after it (reap_orphans()) and @timeout seconds a test.
 */
TCase *new_tcase(Suite *s, const char *name, double timeout);

/* A test runs once per suite, with _i the index of the suite's step @idx. */
#define ADD(tc, fn) tcase_add_loop_test(tc, fn, idx, idx + 1)

/* The tests of a tcase, for add_tests(): TESTS(first_test, second_test). */
#define TESTS(...) ((const TTest *const[]){ __VA_ARGS__, NULL })

/* ADD() each of @tests (NULL terminated) to @tc, for steps[@idx]'s suite. */
void add_tests(TCase *tc, int idx, const TTest *const *tests);

/*
 * Parent side: collect servers orphaned by tests that were killed (a
 * timeout); run_tests is their subreaper.  Never blocks.
 */
void reap_orphans(void);

/*
 * Reset the state as the checked setup does: for a second server in one
 * test, once the first is stopped and server_cleanup()'d (and strace too).
 */
void fixture_setup(void);

/* ---- the server ------------------------------------------------------- */

/* Make steps[@idx] the step of this test (sets st and server_path). */
void use_step(int idx);

/*
 * Start the server with "-p 0" and @args (NULL terminated, or NULL) and
 * wait for its ready line; fails with harness_error() if it does not come.
 * _at: the ready line must name @addr (@args holds "-a", @addr).
 * _nofile: with the soft RLIMIT_NOFILE @nofile (0: inherited), see
 * server_start_nofile().
 */
void start_server(const char *const *args);
void start_server_at(const char *const *args, const char *addr);
void start_server_nofile(const char *const *args, unsigned long nofile);

/* use_step(@idx), then start_server(@args): how most tests begin. */
void start_step(int idx, const char *const *args);

/* Fails, with the exit status and stderr, unless the server still runs. */
void assert_running(void);

/*
 * Send @sig and fail unless the server exits 0 within STOP_DEADLINE_MS;
 * returns the milliseconds it took.  Its stdout stays readable
 * (server_stdout()) until server_cleanup().
 */
long stop_server(int sig, const char *what);

/*
 * Fork the test's load child, whose pid goes to load_pid for the teardown
 * to kill: returns 0 in the child, which must end in _exit(), and the pid
 * in the test.  Fails if fork() does.
 */
pid_t fork_load(void);

/*
 * Wait up to IO_TIMEOUT_MS for the byte a load child writes on @fd after
 * its first response: the load flows, not just started.  Fails, naming
 * @who, if none comes.
 */
void wait_load_flowing(int fd, const char *who);

/* With CK_VERBOSITY=verbose, print "<step>: " and the line; else nothing. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- connections ------------------------------------------------------ */

/* A connected socket to the server; fails if it cannot connect. */
int connect_or_fail(void);

/* Send @len bytes on @fd; fails (quoting the start of them) if it cannot. */
void send_or_fail(int fd, const void *buf, size_t len, const char *what);

/* Read exactly @n responses (and nothing more so far) into @r[0..@n-1]. */
void read_or_fail(int fd, int n, struct http_response *r, const char *what);

/* Send @req on the open connection @fd and read its one response into @r. */
void request_on(int fd, const char *req, struct http_response *r, const char *what);

/*
 * Send @req on the open connection @fd: it must be answered like GET /
 * (assert_root()) keeping the connection (@keep), or closing it, and then
 * the server must close @fd within CLOSE_AFTER_MS.  @fd stays ours to close.
 */
void root_on(int fd, const char *req, bool keep, const char *what);

/*
 * Two requests on one new connection, the shape of the keep-alive tests:
 * root_on(@first, kept), then root_on(@second, @keep).  Closes it after.
 */
void two_requests(const char *first, const char *second, bool keep, const char *what);

/*
 * A malloc'd GET / of exactly @total bytes (NUL terminated), filled up
 * with ~100-byte "X-FillNNN: aaa..." header lines like a browser's and
 * ending in CRLFCRLF: for the HEADER_LIMIT boundary.  Fails if @total is
 * too small for one filler line.  free() it.
 */
char *request_of_size(size_t total);

/* Connect, send @len bytes at @req, read the response by @mode, close. */
void exchange(const char *req, size_t len, enum read_mode mode,
	      struct http_response *r);

/* Close @fd with a RST (tcp_abort()); fails if it cannot. */
void reset_or_fail(int fd);

/* Keep the socket buffers from holding a whole /large: sends stay in flight. */
void small_rcvbuf(int fd);

/*
 * Read and drop about @n bytes of whatever the server sends, for up to
 * @ms; returns how many came before that, EOF or an error.  Never fails.
 */
size_t drain(int fd, size_t n, int ms);

/* ---- responses -------------------------------------------------------- */

/* @r must be @want byte for byte. */
void assert_exact(const struct http_response *r, const char *want, const char *what);

/* @r's status must be @status. */
void assert_status(const struct http_response *r, int status, const char *what);

/* @r's Connection header must say keep-alive (@keep) or close. */
void assert_connection(const struct http_response *r, bool keep, const char *what);

/* True if @r is GET /'s answer in full, keeping the connection or closing it. */
bool root_ok(const struct http_response *r, bool keep);

/* Fails, saying what differs, unless root_ok(@r, @keep). */
void assert_root(const struct http_response *r, bool keep, const char *what);

/* @r must be a 200 with a /large body of exactly @want intact bytes. */
void assert_large(const struct http_response *r, size_t want, const char *what);

/* The server must close @fd (FIN or RST) within @ms and send nothing more. */
void assert_closes(int fd, int ms, const char *what);

#endif /* TESTS_FIXTURE_H */
