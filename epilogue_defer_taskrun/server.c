/* SPDX-License-Identifier: MIT */
/*
 * epilogue_defer_taskrun: the finished server, retuned for a machine with
 * few cores. Step 07 with no SQ thread and no spinning.
 *
 * What it shows: IORING_SETUP_DEFER_TASKRUN keeps the completions' task
 * work (the second half of every recv, send and accept) queued until this
 * thread enters the kernel to wait, and runs it there, in batches.
 * Every turn of the loop is then one io_uring_enter() that submits what
 * the last batch queued and reaps the next batch. Idle, the thread sleeps
 * in that call; under load each call carries many requests, so syscalls
 * per request fall with the load instead of by spinning a core. It
 * needs IORING_SETUP_SINGLE_ISSUER: only the thread that set the ring up
 * may submit or wait on it. And the responses to a burst of pipelined
 * requests go out in one send.
 *
 * Needs: Linux 6.1 or newer (IORING_SETUP_DEFER_TASKRUN), liburing 2.3;
 * everything else as step07_send_zc.
 *
 * Try it:
 *	make -C epilogue_defer_taskrun
 *	./epilogue_defer_taskrun/server -p 8000
 *	wrk -t1 -c50 -d5s http://127.0.0.1:8000/
 *	strace -c -f -p $(pgrep -nx server)	(during the load, then ^C strace)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <liburing.h>

/* ==================== Configuration ==================== */

#define DEFAULT_PORT		8000
#define DEFAULT_ADDR		"127.0.0.1"
#define DEFAULT_LARGE_BYTES	(1024 * 1024)
#define MAX_LARGE_BYTES		(1024 * 1024 * 1024)
#define MAX_HEADER_BYTES	8192	/* request line + headers + blank line */
#define MAX_CONNS		1024	/* connections served at once */
#define QUEUE_DEPTH		256	/* SQ entries */
#define CQ_ENTRIES		4096	/* >= every request that can be in flight */
#define ACCEPT_BACKOFF_MS	250	/* pause after accept ran out of fds */
#define LINGER_MS		2000	/* after our last response, wait this long for the client's EOF */
#define LINGER_MAX_BYTES	(1024 * 1024)	/* ... and read at most this much of what it sends */
#define STOP_CHECK_MS		500	/* longest sleep before looking at stop_requested */
#define REARM_QUIET_US		100	/* this long without a completion: see rearm_waiting() */
#define DEFAULT_BUFFERS		256	/* provided buffers in the ring (-B) */
#define MAX_BUFFERS		32768	/* the most a buffer ring may hold */
#define BUFFER_SIZE		4096	/* bytes in one provided buffer */
#define BUFFER_GROUP		0	/* our one buffer ring's id */
#define DEFAULT_IDLE_SEC	30	/* close connections idle this long (-t) */
#define BATCH_BYTES		4096	/* responses to pipelined requests sent at once */
/*
 * Below this, we guess, copying costs less than pinning pages and handling
 * a second completion. Where the break-even lies depends on the machine
 * and the network card, and over loopback the kernel copies anyway, so
 * this repository cannot measure it: move it and measure on real network
 * hardware (a TUTORIAL.md exercise). Only /large (when -l makes it this
 * big) goes zero-copy.
 */
#define ZC_MIN_BYTES		16384

struct config {
	const char *addr;
	unsigned int port;
	size_t large_bytes;
	unsigned int max_conns;
	unsigned int buffers;
	unsigned int idle_sec;
};

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-p PORT] [-a ADDR] [-l LARGE_BYTES] [-c CONNS]\n"
		"          [-B BUFFERS] [-t SECONDS] [-h]\n"
		"  -p PORT         TCP port, 0 for any free one (default %d)\n"
		"  -a ADDR         IPv4 address to bind (default %s)\n"
		"  -l LARGE_BYTES  body size of GET /large (default %d)\n"
		"  -c CONNS        connections at once: the fixed-file table size (default %d)\n"
		"  -B BUFFERS      provided buffers, a power of 2 (default %d)\n"
		"  -t SECONDS      close a connection idle this long (default %d)\n"
		"  -h              show this help\n"
		"No -s: nothing spins here. The server sleeps in the kernel until\n"
		"a completion comes, and takes every one that has come at once.\n",
		prog, DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_LARGE_BYTES,
		MAX_CONNS, DEFAULT_BUFFERS, DEFAULT_IDLE_SEC);
}

/* Parse a whole decimal number in [min, max]; anything else is an error. */
static int parse_number(const char *s, unsigned long min, unsigned long max,
			unsigned long *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static void parse_options(int argc, char **argv, struct config *cfg)
{
	struct in_addr unused;
	unsigned long v;
	int opt;

	cfg->addr = DEFAULT_ADDR;
	cfg->port = DEFAULT_PORT;
	cfg->large_bytes = DEFAULT_LARGE_BYTES;
	cfg->max_conns = MAX_CONNS;
	cfg->buffers = DEFAULT_BUFFERS;
	cfg->idle_sec = DEFAULT_IDLE_SEC;

	while ((opt = getopt(argc, argv, "p:a:l:c:B:t:h")) != -1) {
		switch (opt) {
		case 'p':
			if (parse_number(optarg, 0, 65535, &v))
				goto bad;
			cfg->port = v;
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, &unused) != 1)
				goto bad;
			cfg->addr = optarg;
			break;
		case 'l':
			if (parse_number(optarg, 0, MAX_LARGE_BYTES, &v))
				goto bad;
			cfg->large_bytes = v;
			break;
		case 'c':
			if (parse_number(optarg, 1, MAX_CONNS, &v))
				goto bad;
			cfg->max_conns = v;
			break;
		case 'B':
			if (parse_number(optarg, 1, MAX_BUFFERS, &v) || (v & (v - 1)))
				goto bad;
			cfg->buffers = v;
			break;
		case 't':
			if (parse_number(optarg, 1, 86400, &v))
				goto bad;
			cfg->idle_sec = v;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind == argc)
		return;
bad:
	usage(stderr, argv[0]);
	exit(2);
}

/* ==================== HTTP ==================== */

/*
 * Request framing. The parser looks at the bytes received so far and never
 * past them, nor past MAX_HEADER_BYTES. It keeps no state between calls:
 * with more bytes it simply starts again, which is cheap for heads this
 * small and makes a request split into one-byte reads safe by construction.
 */
enum parse_status {
	PARSE_COMPLETE,		/* a whole request head is in the buffer */
	PARSE_INCOMPLETE,	/* valid so far: receive more */
	PARSE_BAD,		/* malformed: 400 */
	PARSE_TOO_LARGE,	/* no blank line within MAX_HEADER_BYTES: 431 */
};

enum response_id {
	RESP_ROOT,
	RESP_LARGE,
	RESP_BAD_REQUEST,
	RESP_NOT_FOUND,
	RESP_METHOD_NOT_ALLOWED,
	RESP_TOO_LARGE,
	RESP_COUNT,
};

struct request {
	size_t head_len;	/* request line + headers + blank line */
	enum response_id route;	/* RESP_ROOT, RESP_LARGE or RESP_NOT_FOUND */
	int is_get;
	int is_head;		/* GET's status and headers, without the body */
	int keep_alive;		/* what the client asked for */
	int close_asked;	/* "Connection: close" wins over "keep-alive" */
	int has_body;		/* we never read bodies, so such a request ends the connection */
};

/* RFC 9110 "tchar": the bytes a method or a header name may contain. */
static int is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Header field values: visible ASCII, space, tab and obs-text (>= 0x80). */
static int is_value_char(unsigned char c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

static int equals_nocase(const unsigned char *s, size_t len, const char *lit)
{
	size_t i;

	if (strlen(lit) != len)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (unsigned char)lit[i])
			return 0;
	}
	return 1;
}

/* Apply the headers we care about: Connection, Content-Length, Transfer-Encoding.
 * val starts after the optional whitespace; trailing whitespace is trimmed here. */
static void apply_header(struct request *req, const unsigned char *name,
			 size_t name_len, const unsigned char *val, size_t val_len)
{
	size_t i, start, end;

	while (val_len && (val[val_len - 1] == ' ' || val[val_len - 1] == '\t'))
		val_len--;
	if (equals_nocase(name, name_len, "content-length")) {
		if (!(val_len == 1 && val[0] == '0'))
			req->has_body = 1;
	} else if (equals_nocase(name, name_len, "transfer-encoding")) {
		req->has_body = 1;
	} else if (equals_nocase(name, name_len, "connection")) {
		/*
		 * A comma-separated list of options, e.g. "keep-alive, Upgrade",
		 * with optional whitespace on either side of each comma.
		 */
		for (i = 0; i <= val_len; i++) {
			if (i < val_len && val[i] != ',')
				continue;
			start = i;
			while (start > 0 && val[start - 1] != ',')
				start--;
			end = i;
			while (start < end && (val[start] == ' ' || val[start] == '\t'))
				start++;
			while (end > start && (val[end - 1] == ' ' || val[end - 1] == '\t'))
				end--;
			if (equals_nocase(val + start, end - start, "close"))
				req->close_asked = 1;
			else if (equals_nocase(val + start, end - start, "keep-alive"))
				req->keep_alive = 1;
			if (req->close_asked)
				req->keep_alive = 0;
		}
	}
}

/*
 * Where the path of a request target t[0..len) starts, and how long it is,
 * or -1 if the target is malformed. The route is the path alone: a query
 * ("/?x=1") does not change it. Origin form "/path?query": the path ends
 * at the query. Absolute form "scheme://authority/path?query", which a
 * server MUST accept (RFC 9112 section 3.2.2; Python's http.client sends it
 * when given a full URL): the path follows the authority, and an empty one
 * means "/" (RFC 9110 section 4.2.3). We serve whatever host the client
 * named, as we ignore Host. Asterisk form "*": a path that matches nothing.
 * Looks at t[0..len) only; len is at least 1.
 */
static int target_path(const unsigned char *t, size_t len, size_t *path,
		       size_t *path_len)
{
	size_t i = 0, authority;

	if (t[0] != '/' && !(len == 1 && t[0] == '*')) {
		/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
		if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
			return -1;
		for (i = 1; i < len; i++) {
			if (!((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') &&
			    !(t[i] >= '0' && t[i] <= '9') && !strchr("+-.", t[i]))
				break;
		}
		if (len - i < 3 || memcmp(t + i, "://", 3) != 0)
			return -1;
		/* A host is required; userinfo ("user@host") is an error (RFC 9110 section 4.2.4). */
		for (i += 3, authority = i; i < len && t[i] != '/' && t[i] != '?'; i++)
			if (t[i] == '@')
				return -1;
		if (i == authority)
			return -1;
	}
	*path = i;
	while (i < len && t[i] != '?')
		i++;
	*path_len = i - *path;
	return 0;
}

static enum parse_status parse_request(const char *buf, size_t len,
				       struct request *req)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t end = len < MAX_HEADER_BYTES ? len : MAX_HEADER_BYTES;
	enum parse_status more = len >= MAX_HEADER_BYTES ? PARSE_TOO_LARGE :
							   PARSE_INCOMPLETE;
	size_t i = 0, start, path, path_len, name_len, val;
	const char *version = "HTTP/1.";

	memset(req, 0, sizeof(*req));

	/* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
	while (i < end && is_tchar(p[i]))
		i++;
	if (i == end)
		return more;
	if (i == 0 || p[i] != ' ')
		return PARSE_BAD;
	req->is_get = (i == 3 && memcmp(p, "GET", 3) == 0);
	req->is_head = (i == 4 && memcmp(p, "HEAD", 4) == 0);
	start = ++i;
	while (i < end && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == end)
		return more;
	if (i == start || p[i] != ' ')
		return PARSE_BAD;
	if (target_path(p + start, i - start, &path, &path_len))
		return PARSE_BAD;
	path += start;
	if (path_len == 0 || (path_len == 1 && p[path] == '/'))
		req->route = RESP_ROOT;
	else if (path_len == 6 && memcmp(p + path, "/large", 6) == 0)
		req->route = RESP_LARGE;
	else
		req->route = RESP_NOT_FOUND;
	i++;
	for (start = i; i - start < 7; i++) {
		if (i == end)
			return more;
		if (p[i] != (unsigned char)version[i - start])
			return PARSE_BAD;
	}
	if (i == end)
		return more;
	if (p[i] < '0' || p[i] > '9')
		return PARSE_BAD;
	/* HTTP/1.1 keeps the connection by default, HTTP/1.0 closes it. */
	req->keep_alive = p[i++] != '0';

	/* Every line ends in CRLF; the head ends with an empty line. */
	for (;;) {
		if (i == end)
			return more;
		if (p[i++] != '\r')
			return PARSE_BAD;
		if (i == end)
			return more;
		if (p[i++] != '\n')
			return PARSE_BAD;
		if (i == end)
			return more;
		if (p[i] == '\r') {
			if (++i == end)
				return more;
			if (p[i++] != '\n')
				return PARSE_BAD;
			req->head_len = i;
			return PARSE_COMPLETE;
		}
		/* field-name ":" OWS field-value OWS */
		for (start = i; i < end && is_tchar(p[i]); i++)
			;
		if (i == end)
			return more;
		if (i == start || p[i] != ':')
			return PARSE_BAD;
		name_len = i - start;
		for (i++; i < end && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		for (val = i; i < end && is_value_char(p[i]); i++)
			;
		if (i == end)
			return more;
		apply_header(req, p + start, name_len, p + val, i - val);
	}
}

/*
 * Every response is built once at startup, status line to last body byte,
 * and never changes: a send can point straight into it, and any number of
 * connections may send the same one at the same time.
 */
struct response {
	char *data;
	size_t len;
	size_t head_len;	/* status line and headers, through the blank line */
	int keep_alive;		/* the connection stays open after it */
	int buf_index;		/* registered buffer holding it, or -1 */
};

static struct response responses[2][RESP_COUNT];	/* [keep_alive][id] */
/* HEAD: the same bytes cut after the head, so a HEAD and a GET agree. */
static struct response head_responses[2][RESP_COUNT];

static int build_response(struct response *r, const char *status,
			  const char *extra_headers, const char *body,
			  size_t body_len, int keep_alive)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %s\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Connection: %s\r\n"
		     "\r\n", status, body_len, extra_headers,
		     keep_alive ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	r->len = n + body_len;
	r->head_len = n;
	r->keep_alive = keep_alive;
	r->buf_index = -1;
	r->data = malloc(r->len);
	if (!r->data)
		return -1;
	memcpy(r->data, head, n);
	memcpy(r->data + n, body, body_len);
	return 0;
}

static int build_responses(const struct config *cfg)
{
	static const char text[] = "Have a nice day!\n";
	struct response *r;
	int ret = 0, keep;
	char *large;
	size_t i;

	large = malloc(cfg->large_bytes ? cfg->large_bytes : 1);
	if (!large)
		return -1;
	for (i = 0; i < cfg->large_bytes; i++)
		large[i] = text[i % (sizeof(text) - 1)];

	/*
	 * Two sets: one that keeps the connection and one that closes it.
	 * Errors close in both, as in every step: after a malformed head
	 * there is no telling where the next request would start.
	 */
	for (keep = 0; keep < 2; keep++) {
		r = responses[keep];
		ret |= build_response(&r[RESP_ROOT], "200 OK", "",
				      text, sizeof(text) - 1, keep);
		ret |= build_response(&r[RESP_LARGE], "200 OK", "",
				      large, cfg->large_bytes, keep);
		ret |= build_response(&r[RESP_BAD_REQUEST], "400 Bad Request",
				      "", "Bad Request\n", 12, 0);
		ret |= build_response(&r[RESP_NOT_FOUND], "404 Not Found",
				      "", "Not Found\n", 10, 0);
		ret |= build_response(&r[RESP_METHOD_NOT_ALLOWED],
				      "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
				      "Method Not Allowed\n", 19, 0);
		ret |= build_response(&r[RESP_TOO_LARGE],
				      "431 Request Header Fields Too Large", "",
				      "Request Header Fields Too Large\n", 32, 0);
		/* They share the data: free_responses() frees it once. */
		for (i = 0; i < RESP_COUNT; i++) {
			head_responses[keep][i] = r[i];
			head_responses[keep][i].len = r[i].head_len;
		}
	}
	free(large);
	return ret;
}

static void free_responses(void)
{
	int i;

	for (i = 0; i < RESP_COUNT; i++) {
		free(responses[0][i].data);
		free(responses[1][i].data);
	}
}

static const struct response *choose_response(enum parse_status status,
					      const struct request *req)
{
	/* A body we never read would be taken for the next request: close. */
	int keep = req->keep_alive && !req->has_body;

	if (status == PARSE_BAD)
		return &responses[0][RESP_BAD_REQUEST];
	if (status == PARSE_TOO_LARGE)
		return &responses[0][RESP_TOO_LARGE];
	if (req->is_head)
		return &head_responses[keep][req->route];
	if (!req->is_get)
		return &responses[0][RESP_METHOD_NOT_ALLOWED];
	return &responses[keep][req->route];
}

/* ==================== Sockets ==================== */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/*
 * No SA_RESTART: a blocked accept, recv or io_uring wait must return EINTR
 * so that the loop notices stop_requested at once.
 */
static int install_signal_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		perror("sigaction");
		return -1;
	}
	return 0;
}

/*
 * A peer that resets, or goes away while we still write, is the client's
 * business, not an error of the server: report only the unexpected.
 */
static void report_conn_error(const char *op, int err)
{
	if (err == ECONNRESET || err == EPIPE || err == ETIMEDOUT ||
	    err == EAGAIN || err == ECONNABORTED || err == ENOTCONN)
		return;
	fprintf(stderr, "%s: %s\n", op, strerror(err));
}

static int open_listener(const struct config *cfg, unsigned int *port)
{
	struct sockaddr_in sa;
	socklen_t sa_len = sizeof(sa);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) {
		perror("setsockopt SO_REUSEADDR");
		goto fail;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(cfg->port);
	inet_pton(AF_INET, cfg->addr, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "bind %s:%u: %s\n", cfg->addr, cfg->port,
			strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN)) {
		perror("listen");
		goto fail;
	}
	if (getsockname(fd, (struct sockaddr *)&sa, &sa_len)) {
		perror("getsockname");
		goto fail;
	}
	*port = ntohs(sa.sin_port);
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Options for connections that stay open, set once on the listening socket
 * and inherited by every socket accept() returns:
 * - TCP_NODELAY: a response goes out at once. With Nagle's algorithm a
 *   small response waits while the previous one is unacknowledged, and a
 *   client that pipelines waits for its own delayed ACK, 40 ms a batch.
 * - TCP_USER_TIMEOUT: data the client leaves unacknowledged for the idle
 *   timeout aborts the connection, so a client that stops reading cannot
 *   keep its slot, or a send in flight, for ever.
 */
static int set_connection_options(int fd, unsigned int idle_sec)
{
	unsigned int timeout_ms = idle_sec * 1000;
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms,
		       sizeof(timeout_ms))) {
		perror("setsockopt TCP_NODELAY/TCP_USER_TIMEOUT");
		return -1;
	}
	return 0;
}

/* ==================== Connections ==================== */

/*
 * One slot per connection, from accept to the completion of its close.
 * Accepted sockets go straight into the ring's fixed-file table, never
 * into our fd table: the kernel picks a free table slot and hands us its
 * index, which is also our index into conns[]. The kernel reuses a table
 * slot only after our close of it has completed, and we close only when
 * neither the recv nor a send is left in flight, so a completion can never
 * land on a slot that a newer connection reuses.
 */
struct conn {
	int fd;				/* fixed-file slot; -1 while free */
	int closing;			/* a close request owns fd */
	int recv_armed;			/* the multishot recv is live */
	int cancel_queued;		/* its cancel is on the way */
	int pause_queued;		/* a cancel of the recv alone, see queue_pause() */
	int checking;			/* the sweep asks the send whether it moves */
	int checks_queued;		/* its cancels still to complete, see queue_check() */
	int reading_done;		/* no more requests: EOF, error, last response, idle */
	int input_done;			/* no more reading: EOF, error, or given up */
	int shut;			/* lingering: 1 shutdown in flight, 2 done */
	int zc_notifs;			/* zero-copy notifications still to come */
	int zc_counted;			/* of those, for sends that sent bytes */
	__u64 last_active;		/* accept, bytes in, a response begun or sent */
	size_t len;			/* request bytes in buf */
	size_t drained;			/* bytes read and dropped while lingering */
	int held_first, held_last;	/* buffers not yet copied to buf, or -1 */
	unsigned int held_off;		/* bytes of held_first copied already */
	unsigned int nr_held;		/* buffers it holds: at most hold_share */
	char *spill;			/* bytes past its share, copied out of the ring */
	size_t spill_len, spill_off;	/* bytes in spill, and of those moved to buf */
	int wait_bufs;			/* its recv met an empty ring: see rearm_waiting() */
	int overtaken;			/* released, its close still to complete: see handle_accept() */
	const struct response *resp;	/* being sent, shared and read-only */
	size_t sent;			/* how much of resp the socket took */
	char buf[MAX_HEADER_BYTES];	/* requests, copied out of the buffers */
	struct response batch;		/* resp for several at once: gather_responses() */
	char out[BATCH_BYTES];		/* batch's bytes */
};

static struct conn conns[MAX_CONNS];
static unsigned int nr_conns;

static void init_conns(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
}

static __u64 now_us(void);

/* The fixed-file table has at most MAX_CONNS slots, so fd always fits. */
static struct conn *alloc_conn(int fd)
{
	struct conn *c = &conns[fd];

	c->fd = fd;
	c->closing = 0;
	c->recv_armed = 0;
	c->cancel_queued = 0;
	c->pause_queued = 0;
	c->checking = 0;
	c->checks_queued = 0;
	c->reading_done = 0;
	c->input_done = 0;
	c->shut = 0;
	c->zc_notifs = 0;
	c->zc_counted = 0;
	c->last_active = now_us();
	c->len = 0;
	c->drained = 0;
	c->held_first = -1;
	c->held_last = -1;
	c->held_off = 0;
	c->nr_held = 0;
	c->spill = NULL;
	c->spill_len = 0;
	c->spill_off = 0;
	c->wait_bufs = 0;
	c->resp = NULL;
	c->sent = 0;
	nr_conns++;
	return c;
}

static void free_conn(struct conn *c)
{
	c->fd = -1;
	nr_conns--;
}

/* ==================== io_uring ==================== */

/*
 * user_data travels with a request and comes back in its completion, so it
 * says what completed and for whom:
 *
 *	bits 63..32	unused (0)
 *	bits 31..8	connection slot (fixed-file slot, index into conns[])
 *	bits  7..0	operation (enum op)
 */
enum op {
	OP_ACCEPT,
	OP_ACCEPT_BACKOFF,	/* timeout before retrying a failed accept */
	OP_RECV,
	OP_CHECK,		/* cancel its send alone: does it move? */
	OP_SEND,
	OP_SEND_ZC,		/* its result, then its notification */
	OP_CLOSE,
	OP_SHUTDOWN,		/* lingering close: our side is done sending */
	OP_CANCEL,		/* cancel a connection's requests */
	OP_PAUSE,		/* cancel its recv alone: buf is full */
	OP_SWEEP,		/* timeout: close idle connections */
	OP_SWEEP_UPDATE,	/* move that timeout earlier */
	OP_FD_INSTALL,		/* at exit: a stuck socket into the fd table */
};

static __u64 make_user_data(enum op op, const struct conn *c)
{
	return (__u64)(c ? c - conns : 0) << 8 | op;
}

static int accept_armed;	/* an accept (or its backoff) is in flight */
static int sweep_armed;		/* the idle sweep's timeout is in flight */
static __u64 sweep_at;		/* when it fires, on the now_us() clock */

/*
 * What the ring did, printed at exit: this step's pitfalls, counted with
 * plain increments (no syscall). Shrink -B to watch ENOBUFS happen.
 */
static struct {
	unsigned long connections;	/* accepted */
	unsigned long requests;		/* answered */
	unsigned long recv_rearms;	/* multishot recvs armed again ... */
	unsigned long enobufs;		/* ... of which after ENOBUFS */
	unsigned long pauses;		/* recvs stopped while buf was full */
	unsigned long cq_overflows;	/* CQ found full, completions parked */
	unsigned long short_sends;	/* sends that took less than asked */
	unsigned long spilled;		/* bytes copied past a fair share, see hold_buffer() */
} stats;

static void print_stats(void)
{
	printf("ring: %lu connections, %lu requests; multishot recv re-armed %lu times (%lu after ENOBUFS), paused %lu times; CQ overflowed %lu times; %lu short sends; %lu bytes spilled\n",
	       stats.connections, stats.requests, stats.recv_rearms, stats.enobufs,
	       stats.pauses, stats.cq_overflows, stats.short_sends, stats.spilled);
}
static __u64 idle_timeout_us;	/* -t */

/* liburing 2.3's headers predate these (Linux 6.2). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE	(1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED	(1U << 31)
#endif

static enum {
	ZC_OFF,			/* no IORING_OP_SEND_ZC: plain send for all */
	ZC_UNREGISTERED,	/* zero-copy, pinning the pages per send */
	ZC_FIXED,		/* zero-copy from registered buffers */
} zc_mode;
static unsigned int zc_flags;		/* IORING_SEND_ZC_REPORT_USAGE, if known */
static unsigned long zc_not_copied, zc_copied;

/* Linux 6.8; liburing 2.3 predates it. */
#define OP_FIXED_FD_INSTALL	54	/* IORING_OP_FIXED_FD_INSTALL */
static int can_install_fixed_fd;

/*
 * The SQ holds QUEUE_DEPTH entries; one pass over a burst of completions
 * may queue more than that. When it has fewer than n free, submit what is
 * queued: without an SQ thread the kernel consumes the entries within
 * io_uring_submit() itself, so the room is there when it returns.
 */
static void make_room(struct io_uring *ring, unsigned int n)
{
	int ret;

	while (io_uring_sq_space_left(ring) < n) {
		ret = io_uring_submit(ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			fprintf(stderr, "io_uring_submit: %s\n", strerror(-ret));
			exit(1);
		}
	}
}

/* Never NULL: make_room() has made sure there is a free entry. */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	make_room(ring, 1);
	return io_uring_get_sqe(ring);
}

static void queue_accept(struct io_uring *ring, int listen_fd)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	/*
	 * One completion per new connection, each with F_MORE while the
	 * accept stays armed. Direct descriptors cannot be close-on-exec
	 * (they are not in the fd table at all), so no SOCK_CLOEXEC.
	 */
	io_uring_prep_multishot_accept_direct(sqe, listen_fd, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_ACCEPT, NULL));
	accept_armed = 1;
}

static void queue_accept_backoff(struct io_uring *ring)
{
	/*
	 * The kernel copies the timespec when it takes the request in, at
	 * the next submit: after we return, so it must outlive this
	 * function.
	 */
	static struct __kernel_timespec backoff = {
		.tv_nsec = ACCEPT_BACKOFF_MS * 1000000LL,
	};
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_timeout(sqe, &backoff, 0, 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_ACCEPT_BACKOFF, NULL));
}

static void queue_recv(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	/* No buffer of ours: the kernel picks one from the ring per completion. */
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUFFER_GROUP;
	io_uring_sqe_set_data64(sqe, make_user_data(OP_RECV, c));
	c->recv_armed = 1;
}

static void queue_send(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);
	const char *data = c->resp->data + c->sent;
	size_t len = c->resp->len - c->sent;

	if (zc_mode == ZC_OFF || len < ZC_MIN_BYTES) {
		io_uring_prep_send(sqe, c->fd, data, len, MSG_NOSIGNAL | MSG_WAITALL);
		io_uring_sqe_set_data64(sqe, make_user_data(OP_SEND, c));
	} else {
		if (zc_mode == ZC_FIXED && c->resp->buf_index >= 0)
			io_uring_prep_send_zc_fixed(sqe, c->fd, data, len,
						    MSG_NOSIGNAL | MSG_WAITALL,
						    zc_flags, c->resp->buf_index);
		else
			io_uring_prep_send_zc(sqe, c->fd, data, len,
					      MSG_NOSIGNAL | MSG_WAITALL, zc_flags);
		io_uring_sqe_set_data64(sqe, make_user_data(OP_SEND_ZC, c));
		/* Expect one; handle_send_zc() takes it back if none comes. */
		c->zc_notifs++;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
}

static void queue_close(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe;

	/*
	 * The FIN leaves when the socket's last reference goes. A fixed
	 * file's last one can outlive its close: on Linux 6.1 and 6.12
	 * clients waited up to a second for the FIN (6.1 drops it from a
	 * work item run a second later, io_rsrc_node_ref_zero() in
	 * io_uring/rsrc.c). A shutdown linked ahead of the close sends it
	 * now; its completion shows only if it fails (a reset connection),
	 * and the close runs either way. One room check for both, so the
	 * link is never split.
	 */
	make_room(ring, 2);
	if (!c->shut) {
		sqe = io_uring_get_sqe(ring);
		io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
		io_uring_sqe_set_data64(sqe, make_user_data(OP_SHUTDOWN, c));
		sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
	}
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_close_direct(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_CLOSE, c));
	c->closing = 1;
}

static void queue_cancel(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	/* Every request on this fixed file: the recv, and a send if one is stuck. */
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL |
					    IORING_ASYNC_CANCEL_FD_FIXED);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_CANCEL, c));
	c->cancel_queued = 1;
}

static void queue_shutdown(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	/* The client reads the whole response, then EOF. */
	io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_SHUTDOWN, c));
	sqe->flags |= IOSQE_FIXED_FILE;
	c->shut = 1;
}

/*
 * Backpressure: buf is full and the response ahead is still on its way,
 * so stop reading (cancel the recv by its user_data, not the send) and
 * let TCP make the client wait. The bytes that complete before the cancel
 * lands are held in their buffers; process_requests() re-arms the recv
 * once they are all in buf.
 */
static void queue_pause(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed || c->pause_queued)
		return;
	sqe = get_sqe(ring);
	io_uring_prep_cancel64(sqe, make_user_data(OP_RECV, c), 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_PAUSE, c));
	c->pause_queued = 1;
	stats.pauses++;
}

/*
 * Is a response that has gone past the deadline still moving? One send
 * carries the rest of the body, and a client that reads it slowly but
 * steadily can take longer than -t over it: that is not idle. So at the
 * deadline the sweep cancels the send alone (by its user_data). A send
 * cancelled part way completes with the bytes it has moved since it was
 * queued: some mean the client reads, and handle_send() refreshes
 * last_active and sends the rest; none (-ECANCELED) mean it has not read
 * for -t, and the connection ends. A fast client never meets a check; a
 * slow one, one per -t. Until the cancel has completed no new send is
 * queued, or the cancel could find that one instead.
 */
static void queue_check(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe;

	sqe = get_sqe(ring);
	io_uring_prep_cancel64(sqe, make_user_data(OP_SEND, c), 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_CHECK, c));
	/* A zero-copy send has a user_data of its own: cancel that one too. */
	sqe = get_sqe(ring);
	io_uring_prep_cancel64(sqe, make_user_data(OP_SEND_ZC, c), 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_CHECK, c));
	c->checking = 1;
	c->checks_queued = 2;
}

/*
 * One timeout for all connections, set for the earliest deadline: an idle
 * server with idle connections wakes up only when one is due. Absolute
 * time on CLOCK_MONOTONIC, which now_us() reads too. The kernel copies the
 * timespec when it takes the request in, at the next submit; should
 * both a timeout and an update of it wait in the SQ at once, both
 * read the later value, which is the earlier deadline: still right.
 */
static void arm_sweep(struct io_uring *ring, __u64 deadline)
{
	static struct __kernel_timespec at;
	struct io_uring_sqe *sqe;

	if (sweep_armed && sweep_at <= deadline)
		return;
	sqe = get_sqe(ring);
	at.tv_sec = deadline / 1000000;
	at.tv_nsec = deadline % 1000000 * 1000;
	if (sweep_armed) {
		io_uring_prep_timeout_update(sqe, &at, make_user_data(OP_SWEEP, NULL),
					     IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, make_user_data(OP_SWEEP_UPDATE, NULL));
	} else {
		io_uring_prep_timeout(sqe, &at, 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, make_user_data(OP_SWEEP, NULL));
	}
	sweep_armed = 1;
	sweep_at = deadline;
}

/*
 * Operations this step submits, and the kernel that brought each. The probe
 * turns "Invalid argument" on an old kernel into a message that says why.
 */
static const struct {
	int op;
	const char *name;
	const char *since;
} required_ops[] = {
	{ IORING_OP_ACCEPT, "IORING_OP_ACCEPT", "5.5" },
	{ IORING_OP_RECV, "IORING_OP_RECV", "5.6" },
	{ IORING_OP_SEND, "IORING_OP_SEND", "5.6" },
	{ IORING_OP_CLOSE, "IORING_OP_CLOSE", "5.6" },
	{ IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT", "5.4" },
	{ IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL", "5.5" },
	{ IORING_OP_TIMEOUT_REMOVE, "IORING_OP_TIMEOUT_REMOVE", "5.5" },
	{ IORING_OP_SHUTDOWN, "IORING_OP_SHUTDOWN", "5.11" },
};

/*
 * Features the kernel reports at setup (liburing keeps them in
 * ring->features), and why we rely on each.
 */
static const struct {
	unsigned int feature;
	const char *name;
	const char *since;
} required_features[] = {
	/* A full CQ parks completions on a list instead of dropping them. */
	{ IORING_FEAT_NODROP, "IORING_FEAT_NODROP", "5.5" },
	/* A recv or accept with nothing to do yet waits on a poll, not a thread. */
	{ IORING_FEAT_FAST_POLL, "IORING_FEAT_FAST_POLL", "5.7" },
	/* io_uring_wait_cqe_timeout() hands its timeout to io_uring_enter(). */
	{ IORING_FEAT_EXT_ARG, "IORING_FEAT_EXT_ARG", "5.11" },
};

static int check_kernel_support(struct io_uring *ring)
{
	struct io_uring_probe *probe;
	unsigned int i;
	int ret = 0;

	probe = io_uring_get_probe_ring(ring);
	if (!probe) {
		fprintf(stderr, "io_uring: cannot probe operations (needs Linux 5.6 or newer)\n");
		return -1;
	}
	for (i = 0; i < sizeof(required_ops) / sizeof(required_ops[0]); i++) {
		if (!io_uring_opcode_supported(probe, required_ops[i].op)) {
			fprintf(stderr, "io_uring: this kernel lacks %s (needs Linux %s or newer)\n",
				required_ops[i].name, required_ops[i].since);
			ret = -1;
		}
	}
	io_uring_free_probe(probe);
	for (i = 0; i < sizeof(required_features) / sizeof(required_features[0]); i++) {
		if (!(ring->features & required_features[i].feature)) {
			fprintf(stderr, "io_uring: this kernel lacks %s (needs Linux %s or newer)\n",
				required_features[i].name, required_features[i].since);
			ret = -1;
		}
	}
	return ret;
}

static void report_setup_error(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err));
	if (err == EPERM || err == EACCES)
		fprintf(stderr, "io_uring is disabled here: see sysctl kernel.io_uring_disabled, or a container's seccomp profile\n");
	else if (err == ENOSYS)
		fprintf(stderr, "this kernel has no io_uring, or it is compiled out: README.md says which kernel each step needs\n");
}

/*
 * The provided buffer ring: BUFFER_SIZE-byte buffers that the kernel takes
 * one at a time, only when data arrives, for any connection's recv. A
 * buffer is ours from the completion that names it until we put it back;
 * handle_recv() copies the bytes out and puts it back at once, unless the
 * connection's buf is full (see hold_buffer()).
 */
static struct io_uring_buf_ring *buf_ring;
static size_t buf_ring_size;
static char *buf_pool;
static unsigned int nr_buffers;
static unsigned int bufs_in_ring;	/* put back and not yet seen taken */
static unsigned int hold_share;		/* the most one connection holds */
static unsigned int nr_held;		/* held by all connections together */
static unsigned int nr_waiting;		/* connections with wait_bufs set */

static void recycle_buffer(unsigned short bid)
{
	io_uring_buf_ring_add(buf_ring, buf_pool + (size_t)bid * BUFFER_SIZE,
			      BUFFER_SIZE, bid, io_uring_buf_ring_mask(nr_buffers), 0);
	io_uring_buf_ring_advance(buf_ring, 1);
	bufs_in_ring++;
}

/*
 * Bytes that do not fit in a connection's buf yet stay in their provided
 * buffers, held in arrival order, until process_requests() makes room.
 * Per buffer: the next one held by the same connection, and its length.
 *
 * A pitfall: the ring is shared, and a held buffer comes back only when
 * its client reads the responses ahead of it. A client that pipelines and
 * never reads would keep every buffer its recv takes, and the pause we
 * queue does not stop the kernel at once: a multishot recv takes what the
 * socket has, dozens of buffers in one go, before we see the first. A few
 * such clients would empty the ring, and then every other recv ends with
 * ENOBUFS. So each connection holds at most hold_share buffers (1/16 of
 * the ring, at least 1: holding more would not serve it sooner, it only
 * saves copies) and all of them together at most half the ring, so the
 * other half stays for clients being served. Bytes past that are copied
 * into a spill of the connection's own and their buffer goes back at once.
 * The spill holds only what arrived before the pause landed: the recv is
 * armed again only once spill and held buffers are empty.
 * Returns 1 if the buffer is held, 0 if it may go back, -1 out of memory.
 */
static int held_next[MAX_BUFFERS];
static unsigned int held_len[MAX_BUFFERS];

static int hold_buffer(struct conn *c, unsigned short bid, unsigned int len,
		       unsigned int taken)
{
	char *spill;

	if (c->spill_len || c->nr_held >= hold_share || nr_held >= nr_buffers / 2) {
		spill = realloc(c->spill, c->spill_len + len - taken);
		if (!spill)
			return -1;
		memcpy(spill + c->spill_len,
		       buf_pool + (size_t)bid * BUFFER_SIZE + taken, len - taken);
		c->spill = spill;
		c->spill_len += len - taken;
		stats.spilled += len - taken;
		return 0;
	}
	held_next[bid] = -1;
	held_len[bid] = len;
	if (c->held_last < 0) {
		c->held_first = bid;
		c->held_off = taken;
	} else {
		held_next[c->held_last] = bid;
	}
	c->held_last = bid;
	c->nr_held++;
	nr_held++;
	return 1;
}

/* Bytes received that do not fit in buf yet, held or spilled. */
static int holds_bytes(const struct conn *c)
{
	return c->held_first >= 0 || c->spill_len;
}

static void free_spill(struct conn *c)
{
	free(c->spill);
	c->spill = NULL;
	c->spill_len = 0;
	c->spill_off = 0;
}

/* Move held bytes, then spilled ones, into buf while they fit; give back emptied buffers. */
static void take_held(struct conn *c)
{
	size_t n;
	int bid;

	while ((bid = c->held_first) >= 0 && c->len < sizeof(c->buf)) {
		n = held_len[bid] - c->held_off;
		if (n > sizeof(c->buf) - c->len)
			n = sizeof(c->buf) - c->len;
		memcpy(c->buf + c->len, buf_pool + (size_t)bid * BUFFER_SIZE + c->held_off, n);
		c->len += n;
		c->held_off += n;
		if (c->held_off < held_len[bid])
			break;
		c->held_first = held_next[bid];
		c->held_off = 0;
		if (c->held_first < 0)
			c->held_last = -1;
		recycle_buffer(bid);
		c->nr_held--;
		nr_held--;
	}
	if (c->held_first >= 0 || !c->spill_len)
		return;
	n = c->spill_len - c->spill_off;
	if (n > sizeof(c->buf) - c->len)
		n = sizeof(c->buf) - c->len;
	memcpy(c->buf + c->len, c->spill + c->spill_off, n);
	c->len += n;
	c->spill_off += n;
	if (c->spill_off == c->spill_len)
		free_spill(c);
}

/* No more requests will be read: drop what is held. */
static void drop_held(struct conn *c)
{
	int bid;

	while ((bid = c->held_first) >= 0) {
		c->held_first = held_next[bid];
		recycle_buffer(bid);
		c->nr_held--;
		nr_held--;
	}
	c->held_last = -1;
	c->held_off = 0;
	free_spill(c);
}

/*
 * liburing 2.4 has io_uring_setup_buf_ring() for this; 2.3 (Debian 12) has
 * only the pieces: page-aligned memory for the ring, init, register.
 */
static int setup_buffers(struct io_uring *ring, unsigned int count)
{
	struct io_uring_buf_reg reg;
	unsigned int i;
	int ret;

	nr_buffers = count;
	hold_share = count / 16 ? count / 16 : 1;
	buf_ring_size = count * sizeof(struct io_uring_buf);
	buf_ring = mmap(NULL, buf_ring_size, PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (buf_ring == MAP_FAILED) {
		perror("mmap buffer ring");
		buf_ring = NULL;
		return -1;
	}
	/*
	 * calloc, not malloc: the kernel fills these behind the back of tools
	 * such as valgrind, which would otherwise take every byte received
	 * for uninitialised memory.
	 */
	buf_pool = calloc(count, BUFFER_SIZE);
	if (!buf_pool) {
		fprintf(stderr, "out of memory for %u buffers\n", count);
		return -1;
	}
	io_uring_buf_ring_init(buf_ring);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)buf_ring;
	reg.ring_entries = count;
	reg.bgid = BUFFER_GROUP;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret) {
		report_setup_error("io_uring_register_buf_ring", -ret);
		fprintf(stderr, "provided buffer rings need Linux 5.19 or newer\n");
		return -1;
	}
	for (i = 0; i < count; i++)
		recycle_buffer(i);
	return 0;
}

/* After io_uring_queue_exit(): the kernel no longer touches them. */
static void free_buffers(void)
{
	if (buf_ring)
		munmap(buf_ring, buf_ring_size);
	free(buf_pool);
}

/*
 * Some behaviours have no probe: the opcode is older than the flag. Try
 * such a request once, on a socket pair, and read what completes. Waits
 * at most a second for each completion; 0 with its res and flags, or -1.
 */
static int wait_trial(struct io_uring *ring, int *res, unsigned int *flags)
{
	struct __kernel_timespec second = { .tv_sec = 1 };
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_wait_cqe_timeout(ring, &cqe, &second);
	if (ret) {
		fprintf(stderr, "io_uring: no completion for a setup trial: %s\n",
			strerror(-ret));
		return -1;
	}
	*res = cqe->res;
	*flags = cqe->flags;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		bufs_in_ring--;
		recycle_buffer(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	}
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

/*
 * Multishot recv (Linux 6.0): with a byte waiting, a multishot recv
 * completes with it and IORING_CQE_F_MORE; a kernel without it refuses
 * the flag (-EINVAL). The peer's close then ends it.
 */
static int try_multishot_recv(struct io_uring *ring)
{
	unsigned int flags;
	int sv[2], res, more, ret = -1;
	struct io_uring_sqe *sqe;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("socketpair");
		return -1;
	}
	if (write(sv[1], "x", 1) != 1) {
		perror("write");
		goto out;
	}
	sqe = get_sqe(ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUFFER_GROUP;
	io_uring_sqe_set_data64(sqe, make_user_data(OP_RECV, NULL));
	io_uring_submit(ring);
	if (wait_trial(ring, &res, &flags))
		goto out;
	more = flags & IORING_CQE_F_MORE;
	close(sv[1]);
	sv[1] = -1;
	while (flags & IORING_CQE_F_MORE)
		if (wait_trial(ring, &res, &flags))
			goto out;
	if (!more) {
		fprintf(stderr, "io_uring: this kernel has no multishot recv (needs Linux 6.0 or newer)\n");
		goto out;
	}
	ret = 0;
out:
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return ret;
}

/*
 * IORING_SEND_ZC_REPORT_USAGE (Linux 6.2) makes the notification say
 * whether the kernel copied after all. An older kernel refuses the flag
 * (-EINVAL) while it prepares the request, before it looks at the socket,
 * so a socket pair, which cannot send zero-copy at all, is enough to ask.
 */
static int zc_reports_usage(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;
	unsigned int flags;
	int sv[2], res = -EINVAL, notif_res;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("socketpair");
		return 0;
	}
	sqe = get_sqe(ring);
	io_uring_prep_send_zc(sqe, sv[0], "x", 1, MSG_NOSIGNAL,
			      IORING_SEND_ZC_REPORT_USAGE);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_SEND_ZC, NULL));
	io_uring_submit(ring);
	if (!wait_trial(ring, &res, &flags)) {
		/* A send that went on to use the pages also notifies. */
		while (flags & IORING_CQE_F_MORE)
			if (wait_trial(ring, &notif_res, &flags))
				break;
	}
	close(sv[0]);
	close(sv[1]);
	return res != -EINVAL;
}

/*
 * Register the two /large responses (keep-alive and close) as fixed
 * buffers 0 and 1: the kernel pins their pages once, not on every send.
 * Registered memory counts against RLIMIT_MEMLOCK for users without
 * CAP_IPC_LOCK; when that is too low we still send zero-copy, pinning per
 * send, and say so.
 */
static void setup_zero_copy(struct io_uring *ring)
{
	struct io_uring_probe *probe;
	struct iovec iov[2];
	int ret, keep;

	probe = io_uring_get_probe_ring(ring);
	if (!probe || !io_uring_opcode_supported(probe, IORING_OP_SEND_ZC)) {
		fprintf(stderr, "zero-copy send: this kernel lacks IORING_OP_SEND_ZC (needs Linux 6.0 or newer); large bodies go by plain send\n");
		io_uring_free_probe(probe);
		zc_mode = ZC_OFF;
		return;
	}
	can_install_fixed_fd = io_uring_opcode_supported(probe, OP_FIXED_FD_INSTALL);
	io_uring_free_probe(probe);
	if (zc_reports_usage(ring))
		zc_flags = IORING_SEND_ZC_REPORT_USAGE;
	for (keep = 0; keep < 2; keep++) {
		iov[keep].iov_base = responses[keep][RESP_LARGE].data;
		iov[keep].iov_len = responses[keep][RESP_LARGE].len;
	}
	ret = io_uring_register_buffers(ring, iov, 2);
	if (ret) {
		fprintf(stderr, "zero-copy send: cannot register the /large body: %s%s; pinning its pages per send instead\n",
			strerror(-ret), ret == -ENOMEM ? " (see ulimit -l)" : "");
		zc_mode = ZC_UNREGISTERED;
		return;
	}
	for (keep = 0; keep < 2; keep++)
		responses[keep][RESP_LARGE].buf_index = keep;
	zc_mode = ZC_FIXED;
}

static int setup_ring(struct io_uring *ring, const struct config *cfg)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	/*
	 * A multishot request can post completions faster than we reap them,
	 * so the CQ is sized for bursts. Should it still fill up, the kernel
	 * keeps the extra completions on an overflow list (nothing is lost,
	 * but flushing it costs a syscall) and ends multishot requests with
	 * a final completion without F_MORE, which we re-arm like any other.
	 */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	/*
	 * No SQ thread. A completion's task work (posting its CQE, moving
	 * the bytes of a recv into a buffer) then waits until this thread
	 * enters the kernel to wait for completions, and runs there, in
	 * batches: no interrupting us mid-loop, no other core. The kernel
	 * accepts that only from a ring with a single task submitting to it
	 * (SINGLE_ISSUER), since the work must run in the task that owns
	 * it; and refuses it with SQPOLL, whose thread would be the issuer.
	 */
	p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	ret = io_uring_queue_init_params(QUEUE_DEPTH, ring, &p);
	if (ret < 0) {
		report_setup_error("io_uring_queue_init", -ret);
		if (ret == -EINVAL)
			fprintf(stderr, "io_uring: this kernel refuses IORING_SETUP_DEFER_TASKRUN (needs Linux 6.1 or newer): run step07_send_zc instead\n");
		return -1;
	}
	if (check_kernel_support(ring))
		goto fail;
	/* Empty slots for accept to fill; one per connection we serve at once. */
	ret = io_uring_register_files_sparse(ring, cfg->max_conns);
	if (ret) {
		report_setup_error("io_uring_register_files_sparse", -ret);
		if (ret == -EMFILE)
			fprintf(stderr, "the table (-c %u) may not be larger than the open-file limit (ulimit -n)\n",
				cfg->max_conns);
		goto fail;
	}
	if (setup_buffers(ring, cfg->buffers) || try_multishot_recv(ring))
		goto fail;
	setup_zero_copy(ring);
	return 0;
fail:
	io_uring_queue_exit(ring);
	free_buffers();
	return -1;
}

/* ==================== Event loop ==================== */

/* No syscall: the vDSO serves it where the clocksource allows (tsc, kvm-clock). */
static __u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Idle for -t, or lingering for LINGER_MS after the last response. */
static __u64 conn_deadline(const struct conn *c)
{
	return c->last_active + (c->shut ? LINGER_MS * 1000ULL : idle_timeout_us);
}

/*
 * A multishot recv ends without F_MORE when the buffer ring ran dry
 * (ENOBUFS), when the CQ overflowed, or when we paused it: arm it again,
 * unless reading is over, held bytes still wait for room in buf, or the
 * ring is dry (rearm_waiting() does it then).
 */
static void rearm_recv(struct io_uring *ring, struct conn *c)
{
	if (c->recv_armed || c->input_done || c->wait_bufs || holds_bytes(c))
		return;
	queue_recv(ring, c);
	stats.recv_rearms++;
}

/*
 * A recv that met an empty ring (ENOBUFS) and was armed again at once
 * would meet it again at once, and again: a busy loop, since the buffers
 * come back only as other connections are served. So the connection
 * waits (wait_bufs) and, after each batch of completions, as many waiting
 * connections as there are buffers back in the ring are armed again,
 * taking turns from where the last round stopped. The bytes wait in the
 * socket meanwhile.
 *
 * A pitfall: on Linux 6.1 a multishot recv that has emptied its socket
 * may end with ENOBUFS too, when the ring is dry at that moment (seen
 * under QEMU: a recv of the last 1904 bytes, then ENOBUFS with nothing
 * left to read). Armed again, such a recv just waits for data: no
 * completion comes of it, and if nothing else completes, connections
 * that do have bytes would wait for good. So event_loop() calls this
 * also when REARM_QUIET_US have passed without a completion.
 */
static unsigned int rearm_waiting(struct io_uring *ring)
{
	static unsigned int next;
	unsigned int i, budget = bufs_in_ring, armed = 0;
	struct conn *c;

	for (i = 0; i < MAX_CONNS && nr_waiting && budget; i++) {
		c = &conns[next];
		next = (next + 1) % MAX_CONNS;
		if (c->fd < 0 || !c->wait_bufs)
			continue;
		c->wait_bufs = 0;
		nr_waiting--;
		if (c->recv_armed || c->input_done || holds_bytes(c))
			continue;
		budget--;
		armed++;
		rearm_recv(ring, c);
		stats.enobufs++;
	}
	return armed;
}

/*
 * What a connection gives back when it is over: the buffers it holds, its
 * place among those waiting for buffers, its slot.
 */
static void release_conn(struct conn *c)
{
	drop_held(c);
	if (c->wait_bufs) {
		c->wait_bufs = 0;
		nr_waiting--;
	}
	free_conn(c);
}

static void handle_accept(struct io_uring *ring, int listen_fd,
			  struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	struct conn *c;

	/* Without F_MORE the multishot accept has ended: arm a new one. */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		accept_armed = 0;
	if (res < 0) {
		if (res == -ENFILE)
			fprintf(stderr, "accept: every connection slot is taken (-c)\n");
		else
			report_conn_error("accept", -res);
		/*
		 * ENFILE: the fixed-file table is full. The kernel has
		 * closed that connection (its client sees it closed, not
		 * hanging); handle_close() arms the accept again as soon as
		 * a slot frees. Other shortages: wait a little.
		 */
		if (res == -ENFILE && nr_conns)
			return;
		if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS ||
		    res == -ENOMEM) {
			queue_accept_backoff(ring);
			accept_armed = 1;
			return;
		}
	} else {
		/*
		 * The kernel hands a slot out again as soon as a close has
		 * emptied it, but the close's completion can come after that
		 * of the accept that reused it: a multishot accept posts each
		 * completion at once, and the close's may wait for the end
		 * of a batch (seen on Linux 6.18 under load: a close run as
		 * task work after its linked shutdown). A slot we still take
		 * for open has been closed, then: release it now, and let
		 * its last completions pass when they come (handle_cqe()).
		 * overtaken is not reset by alloc_conn().
		 */
		if (conns[res].fd >= 0) {
			release_conn(&conns[res]);
			conns[res].overtaken = 1;
		}
		c = alloc_conn(res);
		queue_recv(ring, c);
		stats.connections++;
		arm_sweep(ring, conn_deadline(c));
	}
	if (!accept_armed)
		queue_accept(ring, listen_fd);
}

/*
 * Pipelined requests behind the one c->resp answers: while they are
 * complete, and their responses small and keeping the connection open,
 * copy the responses into c->out behind c->resp's, and send them all as
 * one response. A burst of n requests then costs one send, not n sends
 * one after the other, each waiting for the last one's completion. A
 * closing or large response is left for a send of its own.
 */
static void gather_responses(struct conn *c)
{
	const struct response *next;
	enum parse_status status;
	struct request req;

	while (c->len) {
		status = parse_request(c->buf, c->len, &req);
		if (status == PARSE_INCOMPLETE)
			return;
		next = choose_response(status, &req);
		if (!next->keep_alive || next->len >= ZC_MIN_BYTES ||
		    c->resp->len + next->len > sizeof(c->out))
			return;
		if (c->resp != &c->batch) {
			memcpy(c->out, c->resp->data, c->resp->len);
			c->batch.data = c->out;
			c->batch.len = c->resp->len;
			c->batch.keep_alive = 1;
			c->batch.buf_index = -1;
			c->resp = &c->batch;
		}
		memcpy(c->out + c->batch.len, next->data, next->len);
		c->batch.len += next->len;
		stats.requests++;
		c->len -= req.head_len;
		memmove(c->buf, c->buf + req.head_len, c->len);
	}
}

/*
 * Answer the oldest complete request in buf, unless a response is still on
 * its way: responses on one connection go out one at a time, in order.
 */
static void process_requests(struct io_uring *ring, struct conn *c)
{
	enum parse_status status;
	struct request req;

	if (c->resp || c->closing || c->checks_queued)
		return;
	take_held(c);
	rearm_recv(ring, c);
	if (!c->len)
		return;
	status = parse_request(c->buf, c->len, &req);
	if (status == PARSE_INCOMPLETE)
		return;
	c->resp = choose_response(status, &req);
	c->sent = 0;
	stats.requests++;
	/* -t bounds idleness: a response begun is activity. */
	c->last_active = now_us();
	if (c->resp->keep_alive) {
		/* Consume the head; pipelined bytes behind it move to the front. */
		c->len -= req.head_len;
		memmove(c->buf, c->buf + req.head_len, c->len);
		if (c->resp->len < ZC_MIN_BYTES)
			gather_responses(c);
	} else {
		/* The last response: what comes after it is dropped. */
		c->reading_done = 1;
		c->len = 0;
		drop_held(c);
	}
	queue_send(ring, c);
}

/*
 * A connection closes when reading is over and nothing is left to send.
 * The multishot recv must be gone first: it holds a reference to the
 * socket, so a close now would leave the socket open behind it. So must
 * zero-copy notifications: one arriving after the slot is reused would be
 * taken for the new connection's.
 */
static void close_when_done(struct io_uring *ring, struct conn *c)
{
	if (!c->reading_done || c->resp || c->closing || c->pause_queued ||
	    c->shut == 1 || c->checks_queued || c->zc_notifs)
		return;
	/*
	 * A lingering close (see step01): the client may still be sending,
	 * and closing with its bytes unread would send a reset that can
	 * destroy the response. Shut our side down, then drop what the recv
	 * brings until the client's EOF, LINGER_MAX_BYTES, or LINGER_MS after
	 * the last response (the sweep).
	 */
	if (!c->input_done) {
		if (!c->shut) {
			queue_shutdown(ring, c);
			c->last_active = now_us();
			arm_sweep(ring, conn_deadline(c));
		}
		rearm_recv(ring, c);
		return;
	}
	if (c->recv_armed) {
		if (!c->cancel_queued)
			queue_cancel(ring, c);
		return;
	}
	queue_close(ring, c);
}

static void handle_recv(struct io_uring *ring, struct conn *c,
			struct io_uring_cqe *cqe)
{
	unsigned short bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	int res = cqe->res, held = 0;
	size_t n = 0;

	/* Without F_MORE the multishot recv has ended. */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;
	if (cqe->flags & IORING_CQE_F_BUFFER)
		bufs_in_ring--;
	if (res > 0 && !c->reading_done) {
		c->last_active = now_us();
		/*
		 * Copy what fits in buf. Pipelined requests queue up there while
		 * a response is on its way; the rest stays in its buffer, and we
		 * stop reading until there is room again.
		 */
		if (!holds_bytes(c)) {
			n = sizeof(c->buf) - c->len;
			if ((size_t)res < n)
				n = res;
			memcpy(c->buf + c->len, buf_pool + (size_t)bid * BUFFER_SIZE, n);
			c->len += n;
		}
		if (n < (size_t)res) {
			held = hold_buffer(c, bid, res, n);
			queue_pause(ring, c);
		}
	} else if (res > 0) {
		/* Lingering: drop it, up to a limit. */
		c->drained += res;
		if (c->drained >= LINGER_MAX_BYTES)
			c->input_done = 1;
	}
	/*
	 * IORING_CQE_F_BUFFER, not res, says the kernel used a buffer: it is
	 * ours until we put it back, and the bytes are copied now.
	 */
	if ((cqe->flags & IORING_CQE_F_BUFFER) && held <= 0)
		recycle_buffer(bid);
	if (held < 0) {
		fprintf(stderr, "out of memory for pipelined bytes\n");
		res = -ENOMEM;
	}
	if (res == -ENOBUFS) {
		/* The ring ran dry; the bytes are still in the socket. */
		if (!c->wait_bufs) {
			c->wait_bufs = 1;
			nr_waiting++;
		}
	} else if (res == -ECANCELED && !c->cancel_queued) {
		/* queue_pause() stopped it: reading goes on later. */
	} else if (res <= 0) {
		/* EOF: still answer what is complete. An error: nobody to answer. */
		if (res < 0 && res != -ECANCELED)
			report_conn_error("recv", -res);
		if (res < 0) {
			c->len = 0;
			drop_held(c);
		}
		c->reading_done = 1;
		c->input_done = 1;
	}
	rearm_recv(ring, c);
	process_requests(ring, c);
	close_when_done(ring, c);
}

static void handle_send(struct io_uring *ring, struct conn *c, int res)
{
	int checked = c->checking;

	/*
	 * A cancelled send that had sent some bytes completes with their
	 * count, not -ECANCELED: after the sweep's cancel, any result ends
	 * the response, or we would send the rest to a client that stalls.
	 * After its check (queue_check()), bytes are progress, and none
	 * (-ECANCELED) end the response as idle.
	 */
	c->checking = 0;
	if (res < 0 || c->cancel_queued) {
		if (res < 0 && res != -ECANCELED)
			report_conn_error("send", -res);
		c->resp = NULL;
		c->reading_done = 1;
		c->input_done = 1;
		c->len = 0;
		drop_held(c);
	} else {
		/* MSG_WAITALL makes short sends rare (an error part way, say). */
		c->sent += res;
		if (c->sent < c->resp->len) {
			if (checked) {
				/* It moves: not idle. */
				c->last_active = now_us();
				arm_sweep(ring, conn_deadline(c));
			} else {
				stats.short_sends++;
			}
			if (!c->checks_queued)
				queue_send(ring, c);
			return;
		}
		c->resp = NULL;
		c->last_active = now_us();
	}
	process_requests(ring, c);
	close_when_done(ring, c);
}

/*
 * The check's cancel has completed: the send it aimed at has its result
 * or will have it. From now on a new send cannot be taken for it.
 */
static void handle_check(struct io_uring *ring, struct conn *c, int res)
{
	/* -ENOENT: the send had completed already; -EALREADY: it is ending. */
	if (res < 0 && res != -ENOENT && res != -EALREADY)
		fprintf(stderr, "cancel: %s\n", strerror(-res));
	c->checks_queued--;
	if (c->checks_queued)
		return;
	if (c->resp && !c->checking && c->sent < c->resp->len)
		queue_send(ring, c);
	process_requests(ring, c);
	close_when_done(ring, c);
}

/*
 * A zero-copy send completes twice. First with its result, as any send;
 * IORING_CQE_F_MORE on it says a notification will follow. Then with that
 * notification (IORING_CQE_F_NOTIF), once the network stack has let go of
 * our pages: only from then on could they be changed or freed. Its res
 * says whether the kernel had to copy after all.
 */
static void handle_send_zc(struct io_uring *ring, struct conn *c,
			   struct io_uring_cqe *cqe)
{
	if (cqe->flags & IORING_CQE_F_NOTIF) {
		c->zc_notifs--;
		/* Count sends that moved bytes, not failed or cancelled ones. */
		if (c->zc_counted && (zc_flags & IORING_SEND_ZC_REPORT_USAGE)) {
			c->zc_counted--;
			if (cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
				zc_copied++;
			else
				zc_not_copied++;
		}
		close_when_done(ring, c);
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->zc_notifs--;		/* failed before it used our pages */
	else if (cqe->res > 0)
		c->zc_counted++;
	if (cqe->res == -ENOMEM) {
		/*
		 * Pinning per send is charged to RLIMIT_MEMLOCK as well. Every
		 * zero-copy send in flight may fail so: each goes again, plain.
		 */
		if (zc_mode != ZC_OFF)
			fprintf(stderr, "zero-copy send: out of locked memory (see ulimit -l); large bodies go by plain send from now on\n");
		zc_mode = ZC_OFF;
		queue_send(ring, c);
		return;
	}
	handle_send(ring, c, cqe->res);
}

static void handle_shutdown(struct io_uring *ring, struct conn *c, int res)
{
	c->shut = 2;
	if (res < 0) {
		report_conn_error("shutdown", -res);
		c->input_done = 1;
	}
	close_when_done(ring, c);
}

static void handle_close(struct io_uring *ring, int listen_fd, struct conn *c,
			 int res)
{
	/* Even a failed close releases the descriptor. */
	if (res < 0)
		report_conn_error("close", -res);
	release_conn(c);
	if (!accept_armed)
		queue_accept(ring, listen_fd);
}

/*
 * The idle timeout. One timeout request, armed for the earliest deadline
 * (arm_sweep()), closes connections that have been idle for -t seconds
 * (keep-alive clients that send nothing, clients that send their head
 * slowly, clients that stop reading a response: see queue_check()) or
 * that linger past LINGER_MS. A deadline only moves later, with
 * activity, so a sweep that finds nobody due just re-arms for the next
 * one. Cheaper than a linked timeout on every recv, and an idle server
 * with idle connections sleeps until the first is due: each wake-up
 * costs a syscall.
 */
static void sweep_idle_conns(struct io_uring *ring)
{
	__u64 now = now_us(), next = 0, due;
	struct conn *c;
	unsigned int i;

	sweep_armed = 0;
	for (i = 0; i < MAX_CONNS; i++) {
		c = &conns[i];
		if (c->fd < 0 || c->closing || c->cancel_queued)
			continue;
		due = conn_deadline(c);
		if (now < due) {
			if (!next || due < next)
				next = due;
			continue;
		}
		/* A response on its way: idle only if it has stopped moving. */
		if (c->resp) {
			if (!c->checking)
				queue_check(ring, c);
			continue;
		}
		c->reading_done = 1;
		c->input_done = 1;
		c->len = 0;
		drop_held(c);
		close_when_done(ring, c);
	}
	if (next)
		arm_sweep(ring, next);
}

static void handle_cqe(struct io_uring *ring, int listen_fd,
		       struct io_uring_cqe *cqe)
{
	struct conn *c = &conns[(cqe->user_data >> 8) & 0xffffff];
	unsigned int op = cqe->user_data & 0xff;

	/* The last of a connection released already by handle_accept(). */
	if (c->overtaken && (op == OP_SHUTDOWN || op == OP_CLOSE)) {
		if (op == OP_CLOSE)
			c->overtaken = 0;
		return;
	}
	switch (op) {
	case OP_ACCEPT:
		handle_accept(ring, listen_fd, cqe);
		break;
	case OP_ACCEPT_BACKOFF:
		if (cqe->res != -ETIME)
			fprintf(stderr, "accept backoff: %s\n", strerror(-cqe->res));
		queue_accept(ring, listen_fd);
		break;
	case OP_RECV:
		handle_recv(ring, c, cqe);
		break;
	case OP_SEND:
		handle_send(ring, c, cqe->res);
		break;
	case OP_SEND_ZC:
		handle_send_zc(ring, c, cqe);
		break;
	case OP_CLOSE:
		handle_close(ring, listen_fd, c, cqe->res);
		break;
	case OP_SHUTDOWN:
		handle_shutdown(ring, c, cqe->res);
		break;
	case OP_CANCEL:
		/* -ENOENT: the requests had already ended; nothing to do. */
		if (cqe->res < 0 && cqe->res != -ENOENT && cqe->res != -EALREADY)
			fprintf(stderr, "cancel: %s\n", strerror(-cqe->res));
		break;
	case OP_CHECK:
		handle_check(ring, c, cqe->res);
		break;
	case OP_PAUSE:
		if (cqe->res < 0 && cqe->res != -ENOENT && cqe->res != -EALREADY)
			fprintf(stderr, "cancel: %s\n", strerror(-cqe->res));
		c->pause_queued = 0;
		close_when_done(ring, c);
		break;
	case OP_SWEEP:
		if (cqe->res != -ETIME)
			fprintf(stderr, "idle sweep: %s\n", strerror(-cqe->res));
		sweep_idle_conns(ring);
		break;
	case OP_SWEEP_UPDATE:
		/* -ENOENT: it had fired already; its sweep re-arms it. */
		if (cqe->res < 0 && cqe->res != -ENOENT)
			fprintf(stderr, "idle sweep update: %s\n", strerror(-cqe->res));
		break;
	}
}

/*
 * A signal interrupts a wait that has begun, but one that lands after the
 * loop looked at stop_requested and before the wait began would leave us
 * asleep until the next completion. Waking up every STOP_CHECK_MS when
 * idle bounds how long a stop request can wait.
 */
static struct __kernel_timespec stop_check = {
	.tv_nsec = STOP_CHECK_MS * 1000000LL,
};

/* While connections wait for buffers that are back: see rearm_waiting(). */
static struct __kernel_timespec rearm_quiet = {
	.tv_nsec = REARM_QUIET_US * 1000LL,
};

static int event_loop(struct io_uring *ring, int listen_fd)
{
	struct io_uring_cqe *cqe;
	unsigned int head, count;
	int ret;

	queue_accept(ring, listen_fd);
	while (!stop_requested) {
		/*
		 * One syscall per turn: submit what the last batch queued,
		 * then, unless a completion is already in the CQ, run the
		 * task work waiting for us and sleep until a completion is
		 * posted. Never peek and loop: a request that had to wait (a
		 * recv for its data, an accept for its connection) completes
		 * only inside such a wait (IORING_ENTER_GETEVENTS), so a loop
		 * that only peeks would wait for itself. It returns the number
		 * submitted, or -ETIME after stop_check with nothing done.
		 */
		ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1,
				nr_waiting && bufs_in_ring ? &rearm_quiet : &stop_check,
				NULL);
		if (ret == -EINTR || ret == -ETIME) {
			/* Quiet: see rearm_waiting()'s pitfall. */
			if (nr_waiting)
				rearm_waiting(ring);
			continue;
		}
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY) {
			fprintf(stderr, "io_uring_submit_and_wait_timeout: %s\n",
				strerror(-ret));
			return 1;
		}
		/* Handle every completion that is ready, then free their slots in one go. */
		count = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			handle_cqe(ring, listen_fd, cqe);
			count++;
		}
		io_uring_cq_advance(ring, count);
		if (nr_waiting)
			rearm_waiting(ring);
		if (io_uring_cq_has_overflow(ring))
			stats.cq_overflows++;
	}
	return 0;
}

/*
 * At exit. A zero-copy notification comes only once the client has
 * acknowledged the data, and a process cannot finish exiting while its
 * io_uring requests are in flight (the kernel's io_uring_cancel_generic()
 * waits for them, and an owed notification is one): a client that stopped
 * reading would hold us here until TCP_USER_TIMEOUT (-t) fires. Nor does tearing the ring down help: the
 * ring waits for the notification, and its fixed-file table, freed last,
 * keeps the socket open. So reset those connections: install each stuck
 * fixed file into the fd table (IORING_OP_FIXED_FD_INSTALL, Linux 6.8),
 * set SO_LINGER to 0 there, then cancel its send and close every handle
 * on it. The last close resets the connection and drops the unsent data,
 * and the notification comes.
 */
static void abort_stuck_sends(struct io_uring *ring)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	/* Closes of other connections may still complete: count only ours. */
	static unsigned char aborting[MAX_CONNS];
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	unsigned int i, stuck = 0;
	struct conn *c;

	for (i = 0; i < MAX_CONNS; i++) {
		if (conns[i].fd < 0 || !conns[i].zc_notifs)
			continue;
		stuck++;
		aborting[i] = 1;
		if (!can_install_fixed_fd)
			continue;
		sqe = get_sqe(ring);
		io_uring_prep_rw(OP_FIXED_FD_INSTALL, sqe, conns[i].fd, NULL, 0, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, make_user_data(OP_FD_INSTALL, &conns[i]));
	}
	if (!stuck)
		return;
	if (!can_install_fixed_fd) {
		fprintf(stderr, "waiting for %u zero-copy sends that clients do not read (at most -t seconds)\n",
			stuck);
		return;
	}
	io_uring_submit(ring);
	/* Each stuck connection: its install completes, then its close. */
	stuck *= 2;
	while (stuck && !io_uring_wait_cqe_timeout(ring, &cqe, &stop_check)) {
		c = &conns[(cqe->user_data >> 8) & 0xffffff];
		/* Anything else completing now is of no interest any more. */
		if ((cqe->user_data & 0xff) == OP_CLOSE && aborting[c - conns])
			stuck--;
		if ((cqe->user_data & 0xff) == OP_FD_INSTALL) {
			stuck--;
			if (cqe->res < 0) {
				fprintf(stderr, "fixed fd install: %s\n", strerror(-cqe->res));
			} else {
				if (setsockopt(cqe->res, SOL_SOCKET, SO_LINGER, &reset,
					       sizeof(reset)))
					perror("setsockopt SO_LINGER");
				close(cqe->res);
			}
			queue_cancel(ring, c);
			queue_close(ring, c);
			io_uring_submit(ring);
		}
		io_uring_cqe_seen(ring, cqe);
	}
}

/* ==================== main ==================== */

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct config cfg;
	unsigned int port;
	int listen_fd, ret;

	parse_options(argc, argv, &cfg);
	if (build_responses(&cfg)) {
		fprintf(stderr, "out of memory building the responses\n");
		return 1;
	}
	if (install_signal_handlers())
		return 1;
	listen_fd = open_listener(&cfg, &port);
	if (listen_fd < 0)
		return 1;
	if (set_connection_options(listen_fd, cfg.idle_sec))
		return 1;
	if (setup_ring(&ring, &cfg))
		return 1;
	init_conns();
	idle_timeout_us = (__u64)cfg.idle_sec * 1000000;

	printf("listening on %s:%u\n", cfg.addr, port);
	fflush(stdout);

	ret = event_loop(&ring, listen_fd);
	abort_stuck_sends(&ring);

	/*
	 * Tearing the ring down cancels whatever is still in flight, and
	 * closes the sockets in its fixed-file table.
	 */
	io_uring_queue_exit(&ring);
	free_buffers();
	close(listen_fd);
	print_stats();
	/* A send whose notification had not come in by now is not counted. */
	if (zc_flags & IORING_SEND_ZC_REPORT_USAGE)
		printf("zero-copy sends: %lu without a copy, %lu copied by the kernel\n",
		       zc_not_copied, zc_copied);
	free_responses();
	return ret;
}
