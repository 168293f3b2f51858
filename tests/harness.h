/* SPDX-License-Identifier: MIT */
/*
 * harness.h - helpers shared by the step tests: run a step's server,
 * talk HTTP/1.1 to it over plain sockets, and look at it from outside
 * (open fds, CPU time, syscall count under strace).
 *
 * Nothing here depends on Check: every helper returns 0 (or a count) on
 * success and a negative value on failure, and leaves a human readable
 * explanation in harness_error() so that a test can put it in its
 * assertion message.  Every wait is bounded by a timeout so that a broken
 * server makes a test fail, never hang.
 *
 * Built into tests/run_tests by tests/Makefile; see test_steps.c for how
 * to run it.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Why the last helper that returned an error failed. */
const char *harness_error(void);

/* Milliseconds on the monotonic clock. */
long long now_ms(void);
void sleep_ms(long ms);

/* ---- processes ---------------------------------------------------- */

struct server {
	pid_t pid;		/* 0 once reaped */
	uint16_t port;
	int out_fd;		/* the server's stdout, an unlinked file */
	int err_fd;		/* the server's stderr, an unlinked file */
	int wstatus;		/* valid once pid is 0 and reaped is set */
	bool reaped;
};

#define READY_TIMEOUT_MS 5000

/*
 * Start @path with "-p 0" followed by the NULL terminated @extra_args and
 * wait up to READY_TIMEOUT_MS for its "listening on ADDR:PORT" line.
 * @expect_addr is the address the line must name.
 */
int server_start(struct server *s, const char *path,
		 const char *const *extra_args, const char *expect_addr);

/*
 * server_start() with the server's soft RLIMIT_NOFILE set to @nofile before
 * exec (0: inherited).  The hard limit is left as it is, so the test can
 * raise the soft one again with prlimit(2).  A @nofile above the hard
 * limit makes the server exit 127 before exec, saying so on stderr.
 */
int server_start_nofile(struct server *s, const char *path,
			const char *const *extra_args, const char *expect_addr,
			unsigned long nofile);

/* The first @size - 1 bytes the server wrote to stderr so far. */
const char *server_stderr(struct server *s, char *buf, size_t size);

/*
 * The same for stdout, the ready line included; still readable after
 * server_stop(), for what a server prints at exit.
 */
const char *server_stdout(struct server *s, char *buf, size_t size);

/* True if the server has not exited (reaps it if it has). */
bool server_alive(struct server *s);

/*
 * Send @sig and wait up to @deadline_ms for the server to exit.  Returns 0
 * if it exited in time (its status is then in s->wstatus and the time it
 * took in *elapsed_ms); otherwise SIGKILLs it, reaps it and returns -1.
 */
int server_stop(struct server *s, int sig, long deadline_ms, long *elapsed_ms);

/* SIGKILL and reap if still running, close the capture files.  Idempotent. */
void server_cleanup(struct server *s);

/*
 * Run @path with @args (NULL terminated, without argv[0]) and wait up to
 * @deadline_ms for it to exit on its own.  Its stdout and stderr are
 * copied into @out and @err (NUL terminated).  Returns 0 and the wait
 * status in *wstatus, or -1 if it did not exit in time (it is killed then).
 */
int run_to_exit(const char *path, const char *const *args, long deadline_ms,
		int *wstatus, char *out, size_t out_size, char *err, size_t err_size);

/* Describe a wait status, e.g. "exit 0", "killed by signal 9". */
const char *wstatus_str(int wstatus, char *buf, size_t size);

/* ---- /proc --------------------------------------------------------- */

/* Number of open fds of @pid, or -1. */
int proc_fd_count(pid_t pid);

/*
 * Occupied slots in the fixed-file tables of @pid's io_uring instances,
 * as /proc/PID/fdinfo lists them (sockets accepted straight into the
 * table have no fd of their own), or -1.  The kernel lists them only if
 * it gets the ring's lock at once, so a busy ring may show fewer.
 */
int proc_fixed_file_count(pid_t pid);

/*
 * CPU time (user + system) of @pid in seconds, summed over every task in
 * /proc/PID/task, which includes the io_uring SQ-poll kernel thread.
 * Returns a negative value on error.
 */
double proc_cpu_seconds(pid_t pid);

/* ---- strace -------------------------------------------------------- */

struct strace_run {
	pid_t pid;
	int err_fd;		/* strace's stderr, an unlinked file */
	char out_path[256];	/* the -c summary */
	bool reaped;
};

/*
 * Attach "strace -f -c" to @target and wait until it has attached.
 * Returns 0 when counting, 1 when the measurement cannot be done here
 * (strace missing, ptrace not permitted) with the reason in @why, or -1.
 */
int strace_start(struct strace_run *t, pid_t target, char *why, size_t why_size);

/*
 * Stop strace and return the total syscall count in *calls (0 when the
 * summary has no total row, which is what strace prints for zero calls).
 * When @table is not NULL the summary text is copied into it.
 */
int strace_finish(struct strace_run *t, long *calls, char *table, size_t table_size);

/* The calls of syscall @name (or "total") in strace -c's @table; 0 if absent. */
long strace_calls_of(const char *table, const char *name);

/* Kill and reap strace if still running, remove its files.  Idempotent. */
void strace_cleanup(struct strace_run *t);

/* ---- HTTP client --------------------------------------------------- */

#define IO_TIMEOUT_MS 5000

/* How a response ends. */
enum read_mode {
	READ_TO_EOF,		/* until the server closes */
	READ_BY_LENGTH,		/* until Content-Length is met, or EOF */
};

struct http_response {
	char *raw;		/* every byte received, NUL terminated */
	size_t raw_len;
	size_t cap;
	size_t header_len;	/* through the blank line, 0 if not seen */
	int status;		/* -1 if the status line did not parse */
	long content_length;	/* -1 if absent or unparsable */
	const char *body;	/* raw + header_len */
	size_t body_len;
	bool eof;		/* the server closed (FIN or RST) */
	bool reset;		/* ... with a RST */
};

void http_response_free(struct http_response *r);

/* The value of header @name (case-insensitive), copied into @buf, or NULL. */
const char *http_header(const struct http_response *r, const char *name,
			char *buf, size_t size);

/* The status line without CRLF, copied into @buf. */
const char *http_status_line(const struct http_response *r, char *buf,
			     size_t size);

/* A printable, shortened rendering of @len bytes at @p for messages. */
const char *quote_bytes(const void *p, size_t len, char *buf, size_t size);

/* Connected non-blocking TCP socket to 127.0.0.1:@port, or -1. */
int tcp_connect(uint16_t port, int timeout_ms);
int tcp_connect_addr(const char *addr, uint16_t port, int timeout_ms);

int send_all(int fd, const void *buf, size_t len, int timeout_ms);

/* One send() per byte with TCP_NODELAY and @gap_us between bytes. */
int send_bytewise(int fd, const void *buf, size_t len, long gap_us);

/*
 * Read one response from @fd into @r (which must be zeroed or freed).
 * @rcv_delay_us, if non-zero, sleeps between reads of at most @chunk
 * bytes to play a slow reader.
 */
int http_read(int fd, enum read_mode mode, int timeout_ms,
	      struct http_response *r);
int http_read_slow(int fd, enum read_mode mode, int timeout_ms, size_t chunk,
		   long rcv_delay_us, struct http_response *r);

/* Connect, send @req, read the response, close. */
int http_exchange(uint16_t port, const char *req, size_t len,
		  enum read_mode mode, struct http_response *r);

/*
 * @n clients at once, driven by poll() from this thread: each connects,
 * sends @req and reads one response.  @out must have room for @n
 * responses (zeroed).  Returns how many clients got a complete response
 * within @timeout_ms; harness_error() names the first failure.
 */
int http_many(uint16_t port, const char *req, int n, enum read_mode mode,
	      int timeout_ms, struct http_response *out);

/*
 * Keep-alive: one connection carries many responses, each delimited by
 * its Content-Length.  Take the response at the start of the @len bytes
 * at @buf into @r (zeroed or freed): returns the bytes it spans, 0 if it
 * is not complete yet, or -1 if it cannot be delimited (no valid
 * Content-Length, or no head within 64 KiB).
 */
long http_take_response(const char *buf, size_t len, struct http_response *r);

/*
 * Read exactly @n responses from @fd into @out[0..@n-1] (zeroed), the
 * way a pipelining client does: they may arrive in any split.  Fails if
 * the server closes first, if @timeout_ms passes, or if bytes beyond the
 * @n-th response have arrived by then (a response too many, or garbage).
 */
int http_read_responses(int fd, int n, int timeout_ms, struct http_response *out);

/*
 * Keep-alive load: on each of the @n connected sockets @fds at once, send
 * the @len bytes at @req and read @per_conn responses, driven by poll()
 * from this thread.  Response j of connection i goes to
 * @out[i * @per_conn + j] (zeroed).  Returns 0 when every connection got
 * exactly its responses within @timeout_ms; otherwise -1 and
 * harness_error() names the first connection that did not (closed early,
 * timed out, or sent bytes beyond its last response).
 */
int http_many_on(const int *fds, int n, const void *req, size_t len, int per_conn,
		 int timeout_ms, struct http_response *out);

/* What the peer did next on a connection, see peer_wait(). */
enum peer_event {
	PEER_SILENT,		/* nothing within the time given */
	PEER_CLOSED,		/* FIN: recv returned 0 */
	PEER_RESET,		/* RST: recv failed with ECONNRESET */
	PEER_DATA,		/* bytes; harness_error() quotes them */
	PEER_ERROR,		/* another error; harness_error() says which */
};

/*
 * Wait up to @timeout_ms for the peer to do something on @fd: close it,
 * reset it or send bytes (which are consumed).  For "the server closes
 * this connection within X" and "the server sends nothing more".
 */
enum peer_event peer_wait(int fd, int timeout_ms);
const char *peer_event_str(enum peer_event ev);

/*
 * One recv() of at most @size bytes from @fd into @buf, without waiting:
 * PEER_DATA with the count in *@n, PEER_CLOSED, PEER_RESET (what came
 * before the RST was readable first), PEER_SILENT when nothing is there
 * yet (EAGAIN, EINTR), or PEER_ERROR (harness_error() says which).
 */
enum peer_event recv_event(int fd, void *buf, size_t size, size_t *n);

/* Close @fd with a RST instead of a FIN (SO_LINGER with a zero timeout). */
int tcp_abort(int fd);

/* Body of /large cut to @len bytes is the text repeated; check it. */
bool large_body_ok(const char *body, size_t len, size_t *bad_at);

#define NICE_DAY "Have a nice day!\n"

#endif /* TESTS_HARNESS_H */
