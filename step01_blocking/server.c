/* SPDX-License-Identifier: MIT */
/*
 * step01_blocking: the baseline, a blocking HTTP server.
 *
 * What it shows: one connection at a time, served with the four classic
 * syscalls accept(2), recv(2), send(2) and close(2). Every later step
 * serves exactly the same HTTP with fewer syscalls per request; this is
 * the yardstick. When the client may still be sending after its response,
 * the close lingers (shutdown(2), then recv until the client's EOF), so
 * that unread bytes never turn the close into a reset that cuts the
 * response.
 *
 * Needs: any Linux kernel. No io_uring yet.
 *
 * Try it:
 *	make -C step01_blocking
 *	./step01_blocking/server -p 8000
 *	curl -v http://127.0.0.1:8000/
 *	strace -c -f -p $(pgrep -nx server)	(make requests, then ^C strace)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>

/* ==================== Configuration ==================== */

#define DEFAULT_PORT		8000
#define DEFAULT_ADDR		"127.0.0.1"
#define DEFAULT_LARGE_BYTES	(1024 * 1024)
#define MAX_LARGE_BYTES		(1024 * 1024 * 1024)
#define MAX_HEADER_BYTES	8192	/* request line + headers + blank line */
#define SOCKET_TIMEOUT_SEC	2	/* how long a silent client may hold us */
#define ACCEPT_BACKOFF_MS	250	/* pause after accept ran out of fds */
#define LINGER_MS		2000	/* after our last response, wait this long for the client's EOF */
#define LINGER_MAX_BYTES	(1024 * 1024)	/* ... and read at most this much of what it sends */

struct config {
	const char *addr;
	unsigned int port;
	size_t large_bytes;
};

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-p PORT] [-a ADDR] [-l LARGE_BYTES] [-h]\n"
		"  -p PORT         TCP port, 0 for any free one (default %d)\n"
		"  -a ADDR         IPv4 address to bind (default %s)\n"
		"  -l LARGE_BYTES  body size of GET /large (default %d)\n"
		"  -h              show this help\n",
		prog, DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_LARGE_BYTES);
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

	while ((opt = getopt(argc, argv, "p:a:l:h")) != -1) {
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
static volatile int wake_fds[2] = { -1, -1 };	/* listener, current connection */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	/*
	 * A signal that lands just before a blocking call does not interrupt
	 * it. Shutting the sockets down (shutdown() is async-signal-safe)
	 * makes an accept(), recv() or send() on them return at once, whether
	 * it is already blocked or about to start.
	 */
	if (wake_fds[0] >= 0)
		shutdown(wake_fds[0], SHUT_RDWR);
	if (wake_fds[1] >= 0)
		shutdown(wake_fds[1], SHUT_RDWR);
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
 * Timeouts go on the listening socket once: Linux copies SO_RCVTIMEO and
 * SO_SNDTIMEO into every socket accept() returns, at no syscall per
 * connection. A client that goes silent, or stops reading, holds this
 * one-at-a-time server for SOCKET_TIMEOUT_SEC; one that trickles a byte
 * now and then holds it far longer, since each recv() and send() gets the
 * full timeout. A blocking server cannot help that: step02 serves the
 * others meanwhile. accept() itself wakes up every SOCKET_TIMEOUT_SEC with
 * EAGAIN, which is harmless.
 */
static int set_socket_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = SOCKET_TIMEOUT_SEC };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		perror("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
		return -1;
	}
	return 0;
}

/* ==================== Event loop ==================== */

static int send_all(int fd, const struct response *resp)
{
	size_t sent = 0;
	ssize_t n;

	/* send() may take only part of a large body: go on from where it stopped. */
	while (sent < resp->len) {
		n = send(fd, resp->data + sent, resp->len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR && !stop_requested)
			continue;
		if (n < 0) {
			if (!stop_requested)
				report_conn_error("send", errno);
			return -1;
		}
		sent += n;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * A lingering close: the response is out, but the client may still be
 * sending. Shut our side down (the client reads the response, then EOF),
 * then read and drop what it sends until its own EOF, so that the close
 * finds nothing unread and sends a FIN, not a reset. Bounded: by
 * LINGER_MS (each recv waits at most SOCKET_TIMEOUT_SEC, see
 * set_socket_timeouts()) and by LINGER_MAX_BYTES.
 */
static void linger(int fd, char *buf, size_t size)
{
	long long deadline = now_ms() + LINGER_MS;
	size_t drained = 0;
	ssize_t n;

	if (shutdown(fd, SHUT_WR)) {
		report_conn_error("shutdown", errno);
		return;
	}
	while (drained < LINGER_MAX_BYTES && now_ms() < deadline) {
		n = recv(fd, buf, size, 0);
		if (n < 0 && errno == EINTR && !stop_requested)
			continue;
		if (n <= 0)	/* EOF at last, an error, or the timeout */
			return;
		drained += n;
	}
}

static void serve_connection(int fd)
{
	enum parse_status status = PARSE_INCOMPLETE;
	char buf[MAX_HEADER_BYTES];
	struct request req;
	size_t len = 0;
	ssize_t n;

	do {
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n < 0 && errno == EINTR && !stop_requested)
			continue;
		if (n < 0) {
			if (!stop_requested)
				report_conn_error("recv", errno);
			return;
		}
		if (n == 0)	/* closed before a whole request: nothing to answer */
			return;
		len += n;
		/* A full buffer makes the parser answer PARSE_TOO_LARGE, so recv never gets 0 bytes of room. */
		status = parse_request(buf, len, &req);
	} while (status == PARSE_INCOMPLETE);

	if (send_all(fd, choose_response(status, &req)) == 0 &&
	    may_send_more(status, &req, len))
		linger(fd, buf, sizeof(buf));
}

static int event_loop(int listen_fd)
{
	int fd, err;

	wake_fds[0] = listen_fd;
	while (!stop_requested) {
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			err = errno;
			if (stop_requested || err == EINTR || err == EAGAIN)
				continue;
			report_conn_error("accept", err);
			/*
			 * Out of descriptors or memory: the connection stays in
			 * the backlog, so retrying at once would fail at once
			 * and burn a core. Give clients time to leave.
			 */
			if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
			    err == ENOMEM)
				usleep(ACCEPT_BACKOFF_MS * 1000);
			continue;
		}
		/* From here on the signal handler can wake a recv() or send() on fd. */
		wake_fds[1] = fd;
		if (!stop_requested)
			serve_connection(fd);
		wake_fds[1] = -1;
		if (close(fd))
			perror("close");
	}
	return 0;
}

/* ==================== main ==================== */

int main(int argc, char **argv)
{
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
	if (set_socket_timeouts(listen_fd))
		return 1;

	printf("listening on %s:%u\n", cfg.addr, port);
	fflush(stdout);

	ret = event_loop(listen_fd);

	close(listen_fd);
	free_responses();
	return ret;
}
