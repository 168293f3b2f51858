/* SPDX-License-Identifier: MIT */
/*
 * step05_peek_spin: reap completions without a syscall.
 *
 * What it shows: the CQ is memory shared with the kernel, so
 * io_uring_peek_cqe() reads it without entering the kernel (unless the CQ
 * overflowed, see event_loop()). With the SQ thread of step04 submitting
 * for us, a loop that only peeks serves request after request with zero
 * syscalls. The price is a core spinning at 100%, next to the SQ
 * thread's: so spin only while there is work, and after SPIN_US with no
 * completion (-s) sleep in io_uring_wait_cqe().
 *
 * Needs: Linux 5.13 or newer (SQPOLL without privileges), liburing 2.3.
 *
 * Try it:
 *	make -C step05_peek_spin
 *	./step05_peek_spin/server -p 8000
 *	ab -n 2000 -c 50 http://127.0.0.1:8000/
 *	strace -c -f -p $(pgrep -nx server)	(make requests, then ^C strace)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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
#define SQ_THREAD_IDLE_MS	100	/* the SQ thread sleeps after this long idle */
#define DEFAULT_SPIN_US		1000	/* spin this long without work, then sleep */
#define MAX_SPIN_US		10000000

struct config {
	const char *addr;
	unsigned int port;
	size_t large_bytes;
	unsigned int spin_us;
};

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-p PORT] [-a ADDR] [-l LARGE_BYTES] [-s SPIN_US] [-h]\n"
		"  -p PORT         TCP port, 0 for any free one (default %d)\n"
		"  -a ADDR         IPv4 address to bind (default %s)\n"
		"  -l LARGE_BYTES  body size of GET /large (default %d)\n"
		"  -s SPIN_US      idle time to spin before sleeping, 0: never sleep (default %d)\n"
		"  -h              show this help\n",
		prog, DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_LARGE_BYTES, DEFAULT_SPIN_US);
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
	cfg->spin_us = DEFAULT_SPIN_US;

	while ((opt = getopt(argc, argv, "p:a:l:s:h")) != -1) {
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
		case 's':
			if (parse_number(optarg, 0, MAX_SPIN_US, &v))
				goto bad;
			cfg->spin_us = v;
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
};

static struct response responses[RESP_COUNT];
/* HEAD: the same bytes cut after the head, so a HEAD and a GET agree. */
static struct response head_responses[RESP_COUNT];

static int build_response(struct response *r, const char *status,
			  const char *extra_headers, const char *body,
			  size_t body_len)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %s\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Connection: close\r\n"
		     "\r\n", status, body_len, extra_headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	r->len = n + body_len;
	r->head_len = n;
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
	char *large;
	size_t i;
	int ret;

	large = malloc(cfg->large_bytes ? cfg->large_bytes : 1);
	if (!large)
		return -1;
	for (i = 0; i < cfg->large_bytes; i++)
		large[i] = text[i % (sizeof(text) - 1)];

	ret = build_response(&responses[RESP_ROOT], "200 OK", "",
			     text, sizeof(text) - 1);
	ret |= build_response(&responses[RESP_LARGE], "200 OK", "",
			      large, cfg->large_bytes);
	ret |= build_response(&responses[RESP_BAD_REQUEST], "400 Bad Request",
			      "", "Bad Request\n", 12);
	ret |= build_response(&responses[RESP_NOT_FOUND], "404 Not Found",
			      "", "Not Found\n", 10);
	ret |= build_response(&responses[RESP_METHOD_NOT_ALLOWED],
			      "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
			      "Method Not Allowed\n", 19);
	ret |= build_response(&responses[RESP_TOO_LARGE],
			      "431 Request Header Fields Too Large", "",
			      "Request Header Fields Too Large\n", 32);
	free(large);
	/* They share the data: free_responses() frees it once. */
	for (i = 0; i < RESP_COUNT; i++) {
		head_responses[i] = responses[i];
		head_responses[i].len = responses[i].head_len;
	}
	return ret;
}

static void free_responses(void)
{
	int i;

	for (i = 0; i < RESP_COUNT; i++)
		free(responses[i].data);
}

static const struct response *choose_response(enum parse_status status,
					      const struct request *req)
{
	if (status == PARSE_BAD)
		return &responses[RESP_BAD_REQUEST];
	if (status == PARSE_TOO_LARGE)
		return &responses[RESP_TOO_LARGE];
	if (req->is_head)
		return &head_responses[req->route];
	if (!req->is_get)
		return &responses[RESP_METHOD_NOT_ALLOWED];
	return &responses[req->route];
}

/*
 * Whether the client may still be sending when we close after a response.
 * Closing a socket with unread bytes makes Linux send a reset instead of a
 * FIN, and a reset can destroy the response before the client has read it
 * (RFC 9112 section 9.6). Signs that it may: a head we stopped reading
 * (malformed, too large), a body we never read, bytes behind the head (a
 * pipelined request). Then we close the way nginx does, lingering; with
 * no such sign, at once, as nginx does too.
 */
static int may_send_more(enum parse_status status, const struct request *req,
			 size_t len)
{
	return status != PARSE_COMPLETE || req->has_body || len > req->head_len;
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

/* ==================== Connections ==================== */

/*
 * One slot per connection, from accept to the completion of its close.
 * A slot goes back to the free list only when no operation on it is left
 * in flight, so a completion can never land on a slot that a newer
 * connection reuses. One exception: a drain's linked timeout may complete
 * late, and its handler does not look at the slot.
 */
struct conn {
	int fd;				/* -1 while the slot is free */
	int closing;			/* a close request owns fd */
	size_t len;			/* request bytes in buf */
	const struct response *resp;	/* what we send, shared and read-only */
	size_t sent;			/* how much of resp the socket took */
	int linger;			/* close lingering, see may_send_more() */
	size_t drained;			/* bytes read and dropped while lingering */
	struct __kernel_timespec linger_end; /* lingering: when it ends, see queue_drain() */
	char buf[MAX_HEADER_BYTES];
};

static struct conn conns[MAX_CONNS];
static unsigned int free_slots[MAX_CONNS];
static unsigned int nr_free;

static void init_conns(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CONNS; i++) {
		conns[i].fd = -1;
		free_slots[i] = MAX_CONNS - 1 - i;
	}
	nr_free = MAX_CONNS;
}

static struct conn *alloc_conn(int fd)
{
	struct conn *c;

	if (!nr_free)
		return NULL;
	c = &conns[free_slots[--nr_free]];
	c->fd = fd;
	c->closing = 0;
	c->len = 0;
	c->resp = NULL;
	c->sent = 0;
	c->linger = 0;
	c->drained = 0;
	return c;
}

static void free_conn(struct conn *c)
{
	c->fd = -1;
	free_slots[nr_free++] = c - conns;
}

/*
 * On shutdown, after the ring is gone: close what no close request owns.
 * Closing an fd twice could close somebody else's, so "closing" matters.
 */
static void close_all_conns(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0 && !conns[i].closing)
			close(conns[i].fd);
}

/* ==================== io_uring ==================== */

/*
 * user_data travels with a request and comes back in its completion, so it
 * says what completed and for whom:
 *
 *	bits 63..32	unused (0)
 *	bits 31..8	connection slot (index into conns[])
 *	bits  7..0	operation (enum op)
 */
enum op {
	OP_ACCEPT,
	OP_ACCEPT_BACKOFF,	/* timeout before retrying a failed accept */
	OP_RECV,
	OP_SEND,
	OP_CLOSE,
	OP_SHUTDOWN,		/* lingering close: our side is done sending */
	OP_DRAIN,		/* lingering close: read and drop */
	OP_DRAIN_TIMEOUT,	/* the timeout linked to a drain */
};

static __u64 make_user_data(enum op op, const struct conn *c)
{
	return (__u64)(c ? c - conns : 0) << 8 | op;
}

static int accept_armed;	/* an accept (or its backoff) is in flight */

/*
 * The SQ holds QUEUE_DEPTH entries; one pass over a burst of completions
 * may queue more than that. When it has fewer than n free, hand what is
 * queued to the SQ thread (io_uring_submit() publishes the tail and wakes
 * the thread if it sleeps), then, if it has not consumed enough yet, wait
 * in the kernel until it has: spinning on io_uring_submit() here would
 * compete for a core with the very thread we wait for.
 */
static void make_room(struct io_uring *ring, unsigned int n)
{
	int ret;

	while (io_uring_sq_space_left(ring) < n) {
		ret = io_uring_submit(ring);
		if (ret >= 0 && io_uring_sq_space_left(ring) < n)
			ret = io_uring_sqring_wait(ring);
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

	io_uring_prep_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_ACCEPT, NULL));
	accept_armed = 1;
}

static void queue_accept_backoff(struct io_uring *ring)
{
	/*
	 * The kernel copies the timespec when it takes the request in: in
	 * io_uring_submit(), or later in the SQ thread (step04 on). Either
	 * way that can be after we return, so it must outlive this function.
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

	/* The parser answers PARSE_TOO_LARGE before buf is full, so len < size. */
	io_uring_prep_recv(sqe, c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_RECV, c));
}

static void queue_send(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_send(sqe, c->fd, c->resp->data + c->sent,
			   c->resp->len - c->sent, MSG_NOSIGNAL | MSG_WAITALL);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_SEND, c));
	/* The next SQE, the close or the shutdown, starts only if this send took every byte. */
	sqe->flags |= IOSQE_IO_LINK;
}

static void queue_close(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_CLOSE, c));
	c->closing = 1;
}

static void queue_shutdown(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	/* The client reads the whole response, then EOF. */
	io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_SHUTDOWN, c));
}

/*
 * The lingering close ends LINGER_MS after the shutdown, however the
 * client spreads what it sends: every drain's linked timeout fires at this
 * one absolute time, not LINGER_MS after its own recv began (a client that
 * sends a byte a second would otherwise hold the slot for ever).
 */
static void start_linger_clock(struct conn *c)
{
	struct timespec now;

	/* CLOCK_MONOTONIC: the clock a timeout uses unless told otherwise. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	c->linger_end.tv_sec = now.tv_sec + LINGER_MS / 1000;
	c->linger_end.tv_nsec = now.tv_nsec + LINGER_MS % 1000 * 1000000LL;
	if (c->linger_end.tv_nsec >= 1000000000) {
		c->linger_end.tv_sec++;
		c->linger_end.tv_nsec -= 1000000000;
	}
}

/*
 * A drain: a recv whose bytes we drop (into buf: the request it held has
 * been answered), with a timeout linked behind it. If neither a byte nor
 * the client's EOF comes by linger_end, the timeout cancels the recv,
 * which then completes with -ECANCELED, and we close.
 */
static void queue_drain(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe;

	/* A linked timeout must reach the kernel with its recv: room for both. */
	make_room(ring, 2);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_recv(sqe, c->fd, c->buf, sizeof(c->buf), 0);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_DRAIN, c));
	sqe->flags |= IOSQE_IO_LINK;
	sqe = io_uring_get_sqe(ring);
	/*
	 * The kernel copies the timespec when it prepares the timeout, as it
	 * takes the SQE: in io_uring_submit(), or later in the SQ thread
	 * (step04 on). Until then it must stay put: it lives in the slot, which
	 * is not reused before this drain completes, and nothing writes it
	 * between the shutdown and the close.
	 */
	io_uring_prep_link_timeout(sqe, &c->linger_end, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, make_user_data(OP_DRAIN_TIMEOUT, c));
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
	{ IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT", "5.5" },
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

static int setup_ring(struct io_uring *ring)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	/*
	 * A connection has at most three requests in flight, so a CQ of
	 * CQ_ENTRIES holds all their completions at once: the kernel never
	 * has to park them on its overflow list.
	 */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	/*
	 * The SQ thread burns a core until it has been idle this long. It
	 * runs the completions' task work too: COOP_TASKRUN is for a ring
	 * without one, and the kernel refuses the two together.
	 */
	p.flags |= IORING_SETUP_SQPOLL;
	p.sq_thread_idle = SQ_THREAD_IDLE_MS;
	ret = io_uring_queue_init_params(QUEUE_DEPTH, ring, &p);
	if (ret < 0) {
		report_setup_error("io_uring_queue_init", -ret);
		if (ret == -EPERM)
			fprintf(stderr, "IORING_SETUP_SQPOLL without privileges needs Linux 5.13 or newer\n");
		else if (ret == -EINVAL)
			fprintf(stderr, "io_uring: this kernel refuses IORING_SETUP_SQPOLL or IORING_SETUP_CQSIZE (needs Linux 5.5 or newer)\n");
		return -1;
	}
	if (check_kernel_support(ring)) {
		io_uring_queue_exit(ring);
		return -1;
	}
	return 0;
}

/* ==================== Event loop ==================== */

/* No syscall: the vDSO serves it where the clocksource allows (tsc, kvm-clock). */
static __u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void handle_accept(struct io_uring *ring, int listen_fd, int res)
{
	struct conn *c;

	accept_armed = 0;
	if (res < 0) {
		report_conn_error("accept", -res);
		/*
		 * Out of descriptors or memory: the connection stays in the
		 * backlog, so an accept queued now would fail at once, again
		 * and again. Wait a little for clients to leave.
		 */
		if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS ||
		    res == -ENOMEM) {
			queue_accept_backoff(ring);
			accept_armed = 1;
			return;
		}
	} else {
		/* We only accept while a slot is free, so this never fails. */
		c = alloc_conn(res);
		queue_recv(ring, c);
	}
	/* With every slot taken, handle_close() re-arms the accept. */
	if (nr_free)
		queue_accept(ring, listen_fd);
}

static void handle_recv(struct io_uring *ring, struct conn *c, int res)
{
	enum parse_status status;
	struct request req;

	if (res <= 0) {		/* error, or closed before a whole request */
		if (res < 0)
			report_conn_error("recv", -res);
		queue_close(ring, c);
		return;
	}
	c->len += res;
	status = parse_request(c->buf, c->len, &req);
	if (status == PARSE_INCOMPLETE) {
		queue_recv(ring, c);
		return;
	}
	c->resp = choose_response(status, &req);
	c->linger = may_send_more(status, &req, c->len);
	/*
	 * A link must reach the kernel in one submission: had get_sqe() to
	 * submit between the two, the chain would end at the send, and the
	 * close could run before it. So make room for both first.
	 *
	 * Closing right behind the send would cut the response whenever the
	 * client may still be sending (see may_send_more()): then the send
	 * is linked to a shutdown instead, and handle_shutdown() starts the
	 * lingering drain.
	 */
	make_room(ring, 2);
	queue_send(ring, c);
	if (c->linger)
		queue_shutdown(ring, c);
	else
		queue_close(ring, c);
}

static void handle_send(struct io_uring *ring, struct conn *c, int res)
{
	/*
	 * Nothing to queue: the linked close (or shutdown) follows a complete
	 * send, and after a failed or short one its own completion,
	 * -ECANCELED, says the socket is still open (see handle_close() and
	 * handle_shutdown()).
	 */
	(void)ring;
	(void)c;
	if (res < 0)
		report_conn_error("send", -res);
}

static void handle_shutdown(struct io_uring *ring, struct conn *c, int res)
{
	if (res < 0) {
		/* -ECANCELED: the send linked before it failed. */
		if (res != -ECANCELED)
			report_conn_error("shutdown", -res);
		queue_close(ring, c);
		return;
	}
	start_linger_clock(c);
	queue_drain(ring, c);
}

/* What the client sends after our last response: drop it, close at EOF. */
static void handle_drain(struct io_uring *ring, struct conn *c, int res)
{
	if (res > 0) {
		c->drained += res;
		if (c->drained < LINGER_MAX_BYTES) {
			queue_drain(ring, c);
			return;
		}
	}
	/* EOF, an error, LINGER_MAX_BYTES, or -ECANCELED: the timeout fired. */
	if (res < 0 && res != -ECANCELED)
		report_conn_error("recv", -res);
	queue_close(ring, c);
}

static void handle_close(struct io_uring *ring, int listen_fd, struct conn *c,
			 int res)
{
	/*
	 * The linked send failed, so the kernel cancelled this close and the
	 * socket is still open: close it with a request of its own, or the fd
	 * leaks.
	 */
	if (res == -ECANCELED) {
		queue_close(ring, c);
		return;
	}
	/* Even a failed close releases the descriptor. */
	if (res < 0)
		report_conn_error("close", -res);
	free_conn(c);
	if (!accept_armed)
		queue_accept(ring, listen_fd);
}

static void handle_cqe(struct io_uring *ring, int listen_fd,
		       struct io_uring_cqe *cqe)
{
	struct conn *c = &conns[(cqe->user_data >> 8) & 0xffffff];

	switch (cqe->user_data & 0xff) {
	case OP_ACCEPT:
		handle_accept(ring, listen_fd, cqe->res);
		break;
	case OP_ACCEPT_BACKOFF:
		if (cqe->res != -ETIME)
			fprintf(stderr, "accept backoff: %s\n", strerror(-cqe->res));
		queue_accept(ring, listen_fd);
		break;
	case OP_RECV:
		handle_recv(ring, c, cqe->res);
		break;
	case OP_SEND:
		handle_send(ring, c, cqe->res);
		break;
	case OP_CLOSE:
		handle_close(ring, listen_fd, c, cqe->res);
		break;
	case OP_SHUTDOWN:
		handle_shutdown(ring, c, cqe->res);
		break;
	case OP_DRAIN:
		handle_drain(ring, c, cqe->res);
		break;
	case OP_DRAIN_TIMEOUT:
		/*
		 * -ETIME: it fired and cancelled its recv; -ECANCELED: the
		 * recv finished first. handle_drain() acts on either, and
		 * this completion may come after the slot is reused: it
		 * must not touch the connection.
		 */
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

static int event_loop(struct io_uring *ring, int listen_fd, unsigned int spin_us)
{
	struct io_uring_cqe *cqe;
	unsigned int head, count;
	__u64 last_work;
	int ret;

	queue_accept(ring, listen_fd);
	last_work = now_us();
	while (!stop_requested) {
		/* No syscall unless the SQ thread sleeps (IORING_SQ_NEED_WAKEUP). */
		ret = io_uring_submit(ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			fprintf(stderr, "io_uring_submit: %s\n", strerror(-ret));
			return 1;
		}
		/*
		 * Peeking reads the shared CQ: no syscall, but spinning on it
		 * burns this core. After spin_us without a completion, sleep
		 * in the kernel instead: one syscall, paid only when idle.
		 * (liburing does enter the kernel from a peek when the kernel
		 * has set IORING_SQ_CQ_OVERFLOW, to flush the completions it
		 * parked while the CQ was full: see cq_ring_needs_flush() in
		 * liburing's src/queue.c. CQ_ENTRIES makes that rare.)
		 */
		ret = io_uring_peek_cqe(ring, &cqe);
		if (ret == -EAGAIN) {
			if (!spin_us || now_us() - last_work < spin_us)
				continue;
			ret = io_uring_wait_cqe_timeout(ring, &cqe, &stop_check);
		}
		if (ret == -EINTR || ret == -ETIME)
			continue;
		if (ret < 0) {
			fprintf(stderr, "io_uring_wait_cqe: %s\n", strerror(-ret));
			return 1;
		}
		/* Handle every completion that is ready, then free their slots in one go. */
		count = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			handle_cqe(ring, listen_fd, cqe);
			count++;
		}
		io_uring_cq_advance(ring, count);
		last_work = now_us();
	}
	return 0;
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
	if (setup_ring(&ring))
		return 1;
	init_conns();

	printf("listening on %s:%u\n", cfg.addr, port);
	fflush(stdout);

	ret = event_loop(&ring, listen_fd, cfg.spin_us);

	/* Tearing the ring down cancels whatever is still in flight. */
	io_uring_queue_exit(&ring);
	close_all_conns();
	close(listen_fd);
	free_responses();
	return ret;
}
