/* SPDX-License-Identifier: MIT */
/*
 * trace_client.c - the client of scripts/trace.sh: sends the traced
 * request(s) and writes a line into the trace buffer (trace_marker) where
 * each one begins, so the timeline can say "request 1 began here".
 *
 *	trace_client ADDR PORT TARGET MARKER_FILE
 *
 * 1. A warm-up request on a connection of its own, before the first
 *    marker: the traced request then meets the server in its steady state
 *    (a step 05 loop still spinning, a step 04 SQ thread still awake), not
 *    just woken from a long sleep. Its response says whether the server
 *    keeps connections alive.
 * 2. Marker "request 1: GET TARGET on a new connection", then the request,
 *    written in one write(2), and its whole response read. If the server
 *    keeps connections (steps 06 and 07), marker "request 2: GET TARGET on
 *    the same connection" and the same request again. If not, the request
 *    says "Connection: close", as a client that knows, so the server closes
 *    at once (a client that may send more gets a lingering close instead),
 *    and the client closes its end after the server's EOF.
 * 3. 20 ms for the server to finish what follows the response (a close and
 *    its completion, the loop's next wait), then the marker "end".
 *
 * Prints "requests=N status=S[,S]" on stdout; exits 1 on any error.
 * A plain C program rather than curl or bash's /dev/tcp: one write per
 * request (bash writes a request line by line), and no dependency.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

static int marker_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "trace_client: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void mark(const char *text)
{
	if (write(marker_fd, text, strlen(text)) < 0)
		die("write trace_marker");
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int connect_to(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 3, 0 };
	int fd;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "trace_client: bad address %s\n", addr);
		exit(1);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("send");
		p += n;
		len -= n;
	}
}

/*
 * Reads one response: the head, then Content-Length bytes of body (or, if
 * the server closes the connection, up to EOF). Returns the status code;
 * *keep says whether the connection stays open.
 */
static int read_response(int fd, int *keep)
{
	static char buf[65536];
	size_t len = 0, head_len = 0, body = 0, got;
	const char *end = NULL, *p, *eol, *c;
	int status = 0, close_conn = 0;
	ssize_t n;

	while (!end) {
		if (len == sizeof(buf) - 1) {
			fprintf(stderr, "trace_client: response head too long\n");
			exit(1);
		}
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("recv");
		if (n == 0) {
			fprintf(stderr, "trace_client: connection closed before a response\n");
			exit(1);
		}
		len += n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	head_len = end + 4 - buf;
	sscanf(buf, "HTTP/1.%*d %d", &status);
	for (p = strstr(buf, "\r\n") + 2; p < end; p = eol + 2) {
		c = strcasestr(p, "close");
		eol = strstr(p, "\r\n");

		if (!strncasecmp(p, "Content-Length:", 15))
			body = strtoull(p + 15, NULL, 10);
		else if (!strncasecmp(p, "Connection:", 11) && c && c < eol)
			close_conn = 1;
	}
	got = len - head_len;
	while (got < body) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("recv body");
		if (n == 0)
			break;
		got += n;
	}
	if (close_conn) {
		/* Read to EOF: the server's close is part of the request. */
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR))
			;
	}
	*keep = !close_conn;
	return status;
}

int main(int argc, char **argv)
{
	char req[2048], line[2300];
	int fd, keep, keepalive, status1, status2 = 0, n;

	if (argc != 5) {
		fprintf(stderr, "usage: %s ADDR PORT TARGET MARKER_FILE\n", argv[0]);
		return 2;
	}
	marker_fd = open(argv[4], O_WRONLY);
	if (marker_fd < 0)
		die(argv[4]);

	/* 1. warm-up, before the first marker; does the server keep alive? */
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		     argv[3], argv[1]);
	fd = connect_to(argv[1], atoi(argv[2]));
	send_all(fd, req, n);
	read_response(fd, &keepalive);
	close(fd);
	pause_ms(10);

	/*
	 * 2. the traced request(s): two on one connection to a server that
	 * keeps it; else one that says "Connection: close", as a client that
	 * knows the server closes, so that the server closes at once.
	 */
	if (!keepalive)
		n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
			     "Connection: close\r\n\r\n", argv[3], argv[1]);
	snprintf(line, sizeof(line), "request 1: GET %s on a new connection", argv[3]);
	mark(line);
	fd = connect_to(argv[1], atoi(argv[2]));
	send_all(fd, req, n);
	status1 = read_response(fd, &keep);
	if (keep) {
		snprintf(line, sizeof(line), "request 2: GET %s on the same connection", argv[3]);
		mark(line);
		send_all(fd, req, n);
		status2 = read_response(fd, &keep);
	} else {
		close(fd);	/* after the server's EOF, as any client */
		fd = -1;
	}

	/* 3. what follows the response, then the end */
	pause_ms(20);
	mark("end");
	if (fd >= 0)
		close(fd);
	if (status2)
		printf("requests=2 status=%d,%d\n", status1, status2);
	else
		printf("requests=1 status=%d\n", status1);
	return 0;
}
