// SPDX-License-Identifier: MIT
/*
 * harness.c - process, /proc, strace and HTTP client helpers for the step
 * tests.  See harness.h for the interface; built into tests/run_tests by
 * tests/Makefile (run it from the repository root as tests/run_tests).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char last_error[1024];

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *harness_error(void)
{
	return last_error;
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int remaining_ms(long long deadline)
{
	long long left = deadline - now_ms();

	return left < 0 ? 0 : (int)left;
}

/* ---- processes ---------------------------------------------------- */

/*
 * An anonymous file that a child writes to and we read back with pread.
 * A regular file rather than a pipe, so that a chatty child can never
 * block on a pipe nobody drains.
 */
static int capture_file(char *path_out, size_t size)
{
	const char *dir = getenv("TMPDIR");
	char path[256];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/run_tests.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		set_err("mkostemp %s: %s", path, strerror(errno));
		return -1;
	}
	if (!path_out) {
		/* Nobody needs the name: the file goes away with its last fd. */
		if (unlink(path) < 0)
			set_err("unlink %s: %s", path, strerror(errno));
		return fd;
	}
	if (strlen(path) >= size) {
		set_err("temporary path %s too long", path);
		unlink(path);
		close(fd);
		return -1;
	}
	memcpy(path_out, path, strlen(path) + 1);
	return fd;
}

static ssize_t read_capture(int fd, char *buf, size_t size)
{
	ssize_t n;

	n = pread(fd, buf, size - 1, 0);
	if (n < 0) {
		set_err("pread: %s", strerror(errno));
		buf[0] = '\0';
		return -1;
	}
	buf[n] = '\0';
	return n;
}

/*
 * Runs in the forked child: never returns.  A non-zero @nofile becomes the
 * soft RLIMIT_NOFILE; the hard limit stays, so that the test may raise the
 * soft one again with prlimit(2) without privileges.
 */
static void exec_child(pid_t parent, const char *path, char *const argv[],
		       int out_fd, int err_fd, rlim_t nofile)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	static const int sigs[] = { SIGINT, SIGTERM, SIGPIPE, SIGQUIT, SIGHUP, SIGCHLD };
	sigset_t none;
	int devnull;
	size_t i;

	/* Never outlive the test that started us, even if Check kills it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	/*
	 * Start like a shell would start it: a test runner may have ignored
	 * SIGPIPE or SIGINT, and ignored dispositions survive exec.
	 */
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 ||
	    dup2(err_fd, 2) < 0)
		_exit(127);
	/* Sockets of the test must not stay open inside the server. */
	close_range(3, ~0U, 0);
	if (nofile) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || nofile > rl.rlim_max) {
			dprintf(2, "RLIMIT_NOFILE %llu: above the hard limit\n",
				(unsigned long long)nofile);
			_exit(127);
		}
		rl.rlim_cur = nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			dprintf(2, "setrlimit RLIMIT_NOFILE: %s\n", strerror(errno));
			_exit(127);
		}
	}
	execv(path, argv);
	dprintf(2, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

static pid_t spawn(const char *path, char *const argv[], int out_fd, int err_fd,
		   rlim_t nofile)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		set_err("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		exec_child(parent, path, argv, out_fd, err_fd, nofile);
	return pid;
}

/* Reap @pid if it exited by @deadline; returns 1 if reaped, 0 if not. */
static int wait_until(pid_t pid, long long deadline, int *wstatus)
{
	pid_t ret;

	for (;;) {
		ret = waitpid(pid, wstatus, WNOHANG);
		if (ret == pid)
			return 1;
		if (ret < 0 && errno != EINTR) {
			set_err("waitpid %d: %s", (int)pid, strerror(errno));
			/* Not our child any more: nothing left to wait for. */
			return errno == ECHILD ? 1 : 0;
		}
		if (now_ms() >= deadline)
			return 0;
		sleep_ms(2);
	}
}

static void kill_and_reap(pid_t pid, int *wstatus)
{
	if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
		set_err("kill %d: %s", (int)pid, strerror(errno));
	/* SIGKILL cannot be caught; only a task stuck in D state survives it. */
	if (!wait_until(pid, now_ms() + 5000, wstatus))
		fprintf(stderr, "harness: pid %d survived SIGKILL for 5 s\n", (int)pid);
}

const char *wstatus_str(int wstatus, char *buf, size_t size)
{
	if (WIFEXITED(wstatus))
		snprintf(buf, size, "exit %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(wstatus),
			 strsignal(WTERMSIG(wstatus)),
			 WCOREDUMP(wstatus) ? ", core dumped" : "");
	else
		snprintf(buf, size, "wait status 0x%x", wstatus);
	return buf;
}

const char *server_stderr(struct server *s, char *buf, size_t size)
{
	if (s->err_fd < 0 || read_capture(s->err_fd, buf, size) < 0)
		buf[0] = '\0';
	return buf;
}

const char *server_stdout(struct server *s, char *buf, size_t size)
{
	if (s->out_fd < 0 || read_capture(s->out_fd, buf, size) < 0)
		buf[0] = '\0';
	return buf;
}

static int parse_ready_line(const char *line, const char *expect_addr,
			    uint16_t *port)
{
	static const char prefix[] = "listening on ";
	const char *addr, *colon, *p;
	unsigned long val = 0;

	if (strncmp(line, prefix, sizeof(prefix) - 1))
		return -1;
	addr = line + sizeof(prefix) - 1;
	colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) != strlen(expect_addr) ||
	    strncmp(addr, expect_addr, colon - addr))
		return -1;
	p = colon + 1;
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p) && val <= 65535)
		val = val * 10 + (unsigned long)(*p++ - '0');
	if (strcmp(p, "\n") || val == 0 || val > 65535)
		return -1;
	*port = (uint16_t)val;
	return 0;
}

int server_start(struct server *s, const char *path,
		 const char *const *extra_args, const char *expect_addr)
{
	return server_start_nofile(s, path, extra_args, expect_addr, 0);
}

int server_start_nofile(struct server *s, const char *path,
			const char *const *extra_args, const char *expect_addr,
			unsigned long nofile)
{
	char *argv[32];
	char out[512], err[512], q[256], status[64];
	char saved[sizeof(last_error)];
	long long deadline;
	size_t argc = 0;
	char *nl;
	int wstatus;

	memset(s, 0, sizeof(*s));
	s->out_fd = -1;
	s->err_fd = -1;
	if (access(path, X_OK) < 0) {
		set_err("server binary %s: %s (not built? run make first)", path,
			strerror(errno));
		return -1;
	}
	argv[argc++] = (char *)path;
	argv[argc++] = "-p";
	argv[argc++] = "0";
	while (extra_args && *extra_args && argc < sizeof(argv) / sizeof(argv[0]) - 1)
		argv[argc++] = (char *)*extra_args++;
	argv[argc] = NULL;

	s->out_fd = capture_file(NULL, 0);
	s->err_fd = capture_file(NULL, 0);
	if (s->out_fd < 0 || s->err_fd < 0)
		goto fail;
	s->pid = spawn(path, argv, s->out_fd, s->err_fd, nofile);
	if (s->pid < 0) {
		s->pid = 0;
		goto fail;
	}

	deadline = now_ms() + READY_TIMEOUT_MS;
	for (;;) {
		if (read_capture(s->out_fd, out, sizeof(out)) < 0)
			goto fail;
		nl = strchr(out, '\n');
		if (nl) {
			nl[1] = '\0';
			if (parse_ready_line(out, expect_addr, &s->port) < 0) {
				set_err("bad ready line %s (want \"listening on %s:PORT\\n\")",
					quote_bytes(out, strlen(out), err, sizeof(err)),
					expect_addr);
				goto fail;
			}
			return 0;
		}
		if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
			s->pid = 0;
			s->reaped = true;
			s->wstatus = wstatus;
			set_err("server exited (%s) before its ready line; stdout %s; stderr: %s",
				wstatus_str(wstatus, status, sizeof(status)),
				quote_bytes(out, strlen(out), q, sizeof(q)),
				server_stderr(s, err, sizeof(err)));
			goto fail;
		}
		if (now_ms() >= deadline) {
			set_err("no ready line within %d ms (stdout so far %s; is stdout flushed?)",
				READY_TIMEOUT_MS, quote_bytes(out, strlen(out), err, sizeof(err)));
			goto fail;
		}
		sleep_ms(5);
	}
fail:
	/* Keep the message: cleanup may run helpers that overwrite it. */
	memcpy(saved, last_error, sizeof(saved));
	server_cleanup(s);
	memcpy(last_error, saved, sizeof(saved));
	return -1;
}

bool server_alive(struct server *s)
{
	int wstatus;

	if (s->pid <= 0)
		return false;
	if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
		s->pid = 0;
		s->reaped = true;
		s->wstatus = wstatus;
		return false;
	}
	return true;
}

int server_stop(struct server *s, int sig, long deadline_ms, long *elapsed_ms)
{
	long long start;
	int wstatus;

	if (!server_alive(s)) {
		set_err("server was no longer running before signal %d", sig);
		return -1;
	}
	start = now_ms();
	if (kill(s->pid, sig) < 0) {
		set_err("kill %d: %s", (int)s->pid, strerror(errno));
		return -1;
	}
	if (wait_until(s->pid, start + deadline_ms, &wstatus)) {
		if (elapsed_ms)
			*elapsed_ms = (long)(now_ms() - start);
		s->pid = 0;
		s->reaped = true;
		s->wstatus = wstatus;
		return 0;
	}
	kill_and_reap(s->pid, &wstatus);
	s->pid = 0;
	s->reaped = true;
	s->wstatus = wstatus;
	set_err("still running %ld ms after signal %d (%s); SIGKILLed",
		deadline_ms, sig, strsignal(sig));
	return -1;
}

void server_cleanup(struct server *s)
{
	int wstatus;

	if (s->pid > 0) {
		kill_and_reap(s->pid, &wstatus);
		s->pid = 0;
		s->reaped = true;
		s->wstatus = wstatus;
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->err_fd >= 0)
		close(s->err_fd);
	s->out_fd = -1;
	s->err_fd = -1;
}

int run_to_exit(const char *path, const char *const *args, long deadline_ms,
		int *wstatus, char *out, size_t out_size, char *err, size_t err_size)
{
	char *argv[32];
	size_t argc = 0;
	int out_fd, err_fd, ret = -1;
	pid_t pid;

	out[0] = '\0';
	err[0] = '\0';
	if (access(path, X_OK) < 0) {
		set_err("%s: %s (not built? run make first)", path, strerror(errno));
		return -1;
	}
	argv[argc++] = (char *)path;
	while (args && *args && argc < sizeof(argv) / sizeof(argv[0]) - 1)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;

	out_fd = capture_file(NULL, 0);
	if (out_fd < 0)
		return -1;
	err_fd = capture_file(NULL, 0);
	if (err_fd < 0)
		goto out_close;
	pid = spawn(path, argv, out_fd, err_fd, 0);
	if (pid < 0)
		goto out_close_err;
	if (wait_until(pid, now_ms() + deadline_ms, wstatus)) {
		ret = 0;
	} else {
		kill_and_reap(pid, wstatus);
		set_err("%s still running after %ld ms (it should have exited)",
			path, deadline_ms);
	}
	read_capture(out_fd, out, out_size);
	read_capture(err_fd, err, err_size);
out_close_err:
	close(err_fd);
out_close:
	close(out_fd);
	return ret;
}

/* ---- /proc --------------------------------------------------------- */

int proc_fd_count(pid_t pid)
{
	struct dirent *de;
	char path[64];
	int count = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir) {
		set_err("opendir %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			count++;
	closedir(dir);
	return count;
}

/* Slots listed after "UserFiles:" in one io_uring fd's fdinfo. */
static int fixed_files_in(pid_t pid, const char *fd)
{
	char path[320], line[512];
	bool in_table = false;
	int count = 0;
	unsigned int slot;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, fd);
	f = fopen(path, "re");
	if (!f) {
		/* Closed since readdir: it holds nothing any more. */
		if (errno == ENOENT)
			return 0;
		set_err("fopen %s: %s", path, strerror(errno));
		return -1;
	}
	/* "UserFiles:\t16" then one "%5u: socket:[ino]" line per used slot. */
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "UserFiles:", 10))
			in_table = true;
		else if (in_table && sscanf(line, " %u:", &slot) == 1)
			count++;
		else
			in_table = false;
	}
	fclose(f);
	return count;
}

int proc_fixed_file_count(pid_t pid)
{
	char path[64], link_path[320], target[64];
	struct dirent *de;
	int count = 0, n;
	ssize_t len;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir) {
		set_err("opendir %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(link_path, sizeof(link_path), "%s/%s", path, de->d_name);
		len = readlink(link_path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strcmp(target, "anon_inode:[io_uring]"))
			continue;
		n = fixed_files_in(pid, de->d_name);
		if (n < 0) {
			closedir(dir);
			return -1;
		}
		count += n;
	}
	closedir(dir);
	return count;
}

static int task_ticks(pid_t pid, const char *tid, unsigned long long *ticks)
{
	unsigned long long utime, stime;
	char path[96], buf[1024];
	const char *p;
	ssize_t n;
	int fd, saved_errno;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, tid);
	/* A thread may exit between readdir and here: it no longer counts. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return 0;
		set_err("open %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	saved_errno = errno;
	close(fd);
	if (n < 0 && saved_errno != ESRCH) {
		set_err("read %s: %s", path, strerror(saved_errno));
		return -1;
	}
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may contain spaces and parentheses; fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2) {
		set_err("cannot parse %s", path);
		return -1;
	}
	*ticks += utime + stime;
	return 0;
}

double proc_cpu_seconds(pid_t pid)
{
	unsigned long long ticks = 0;
	struct dirent *de;
	char path[64];
	long hz;
	DIR *dir;

	hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0) {
		set_err("sysconf(_SC_CLK_TCK) failed");
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir) {
		set_err("opendir %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (task_ticks(pid, de->d_name, &ticks) < 0) {
			closedir(dir);
			return -1;
		}
	}
	closedir(dir);
	return (double)ticks / (double)hz;
}

/* ---- strace -------------------------------------------------------- */

static bool find_in_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	const char *p, *end;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(out, size, "%.*s/%s", (int)(end - p), p, name);
		if (end > p && access(out, X_OK) == 0)
			return true;
	}
	return false;
}

int strace_start(struct strace_run *t, pid_t target, char *why, size_t why_size)
{
	char exe[256], pid_str[16], err[1024], status[64];
	char saved[sizeof(last_error)];
	char *argv[10];
	long long deadline;
	int wstatus, out_fd;

	memset(t, 0, sizeof(*t));
	t->err_fd = -1;
	t->reaped = true;
	if (!find_in_path("strace", exe, sizeof(exe))) {
		snprintf(why, why_size, "strace not found in PATH");
		return 1;
	}
	t->err_fd = capture_file(NULL, 0);
	if (t->err_fd < 0)
		return -1;
	/* strace itself creates the -o file; we only reserve a unique name. */
	out_fd = capture_file(t->out_path, sizeof(t->out_path));
	if (out_fd < 0)
		goto fail;
	close(out_fd);

	snprintf(pid_str, sizeof(pid_str), "%d", (int)target);
	argv[0] = exe;
	argv[1] = "-f";		/* every thread, the SQ-poll one included */
	argv[2] = "-c";
	argv[3] = "-o";
	argv[4] = t->out_path;
	argv[5] = "-p";
	argv[6] = pid_str;
	argv[7] = NULL;
	t->pid = spawn(exe, argv, t->err_fd, t->err_fd, 0);
	if (t->pid < 0) {
		t->pid = 0;
		goto fail;
	}
	t->reaped = false;

	deadline = now_ms() + 5000;
	for (;;) {
		if (read_capture(t->err_fd, err, sizeof(err)) < 0)
			goto fail;
		if (strstr(err, "attached"))
			break;
		if (waitpid(t->pid, &wstatus, WNOHANG) == t->pid) {
			t->reaped = true;
			read_capture(t->err_fd, err, sizeof(err));
			if (strstr(err, "not permitted") || strstr(err, "ptrace")) {
				snprintf(why, why_size, "strace cannot attach here: %.*s",
					 (int)strcspn(err, "\n"), err);
				strace_cleanup(t);
				return 1;
			}
			set_err("strace exited (%s) before attaching: %s",
				wstatus_str(wstatus, status, sizeof(status)), err);
			goto fail;
		}
		if (now_ms() >= deadline) {
			set_err("strace did not attach within 5 s; its stderr: %s", err);
			goto fail;
		}
		sleep_ms(5);
	}
	/*
	 * "attached" is printed once the threads are seized; give strace a
	 * moment to resume them so the first requests are not stalled.
	 */
	sleep_ms(150);
	return 0;
fail:
	/* A failing test exits without teardown: leave no file behind. */
	memcpy(saved, last_error, sizeof(saved));
	strace_cleanup(t);
	memcpy(last_error, saved, sizeof(saved));
	return -1;
}

long strace_calls_of(const char *table, const char *name)
{
	const char *line = table;
	char one[256], tok[6][64];
	size_t len;
	int n;

	while (line && *line) {
		/* One line at a time: sscanf() would read on into the next. */
		len = strcspn(line, "\n");
		if (len >= sizeof(one))
			len = sizeof(one) - 1;
		memcpy(one, line, len);
		one[len] = '\0';
		n = sscanf(one, "%63s %63s %63s %63s %63s %63s",
			   tok[0], tok[1], tok[2], tok[3], tok[4], tok[5]);
		/* "% time seconds usecs/call calls [errors] name" */
		if ((n == 5 && !strcmp(tok[4], name)) ||
		    (n == 6 && !strcmp(tok[5], name)))
			return strtol(tok[3], NULL, 10);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return 0;
}

int strace_finish(struct strace_run *t, long *calls, char *table, size_t table_size)
{
	char buf[8192], status[64];
	int wstatus, fd, ret = -1;
	ssize_t n;

	if (t->reaped) {
		set_err("strace is not running");
		goto out;
	}
	if (kill(t->pid, SIGINT) < 0) {
		set_err("kill strace: %s", strerror(errno));
		goto out;
	}
	if (!wait_until(t->pid, now_ms() + 5000, &wstatus)) {
		kill_and_reap(t->pid, &wstatus);
		t->reaped = true;
		set_err("strace did not exit within 5 s of SIGINT");
		goto out;
	}
	t->reaped = true;
	/* strace re-raises the SIGINT after detaching; anything else is wrong. */
	if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) != SIGINT) {
		set_err("strace %s", wstatus_str(wstatus, status, sizeof(status)));
		goto out;
	}
	fd = open(t->out_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err("open %s: %s", t->out_path, strerror(errno));
		goto out;
	}
	n = read_capture(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		goto out;
	*calls = strace_calls_of(buf, "total");
	if (table)
		snprintf(table, table_size, "%s", buf);
	ret = 0;
out:
	/* Now, not in teardown: a test whose assert fails exits without it. */
	if (t->out_path[0])
		unlink(t->out_path);
	t->out_path[0] = '\0';
	return ret;
}

void strace_cleanup(struct strace_run *t)
{
	int wstatus;

	if (!t->reaped && t->pid > 0)
		kill_and_reap(t->pid, &wstatus);
	t->reaped = true;
	if (t->err_fd >= 0)
		close(t->err_fd);
	t->err_fd = -1;
	if (t->out_path[0])
		unlink(t->out_path);
	t->out_path[0] = '\0';
}

/* ---- HTTP client --------------------------------------------------- */

void http_response_free(struct http_response *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

const char *quote_bytes(const void *p, size_t len, char *buf, size_t size)
{
	const unsigned char *s = p;
	size_t o = 0, i;

	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (i = 0; i < len; i++) {
		char esc[8];
		size_t el;

		if (s[i] == '\r')
			el = (size_t)snprintf(esc, sizeof(esc), "\\r");
		else if (s[i] == '\n')
			el = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (s[i] == '"' || s[i] == '\\')
			el = (size_t)snprintf(esc, sizeof(esc), "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] >= 0x7f)
			el = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
		else
			el = (size_t)snprintf(esc, sizeof(esc), "%c", s[i]);
		if (o + el + 5 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, el);
		o += el;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *http_status_line(const struct http_response *r, char *buf, size_t size)
{
	size_t len = 0;

	if (r->raw) {
		const char *crlf = strstr(r->raw, "\r\n");

		len = crlf ? (size_t)(crlf - r->raw) : strlen(r->raw);
	}
	if (len >= size)
		len = size - 1;
	if (len)
		memcpy(buf, r->raw, len);
	buf[len] = '\0';
	return buf;
}

const char *http_header(const struct http_response *r, const char *name,
			char *buf, size_t size)
{
	size_t name_len = strlen(name);
	const char *p, *end, *eol, *v, *ve;

	if (!r->header_len)
		return NULL;
	p = strstr(r->raw, "\r\n");
	end = r->raw + r->header_len - 2;
	while (p && p + 2 < end) {
		p += 2;
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > name_len && p[name_len] == ':' &&
		    !strncasecmp(p, name, name_len)) {
			v = p + name_len + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			ve = eol;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			snprintf(buf, size, "%.*s", (int)(ve - v), v);
			return buf;
		}
		p = eol;
	}
	return NULL;
}

static int response_append(struct http_response *r, const char *data, size_t len)
{
	if (r->raw_len + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *raw;

		while (cap < r->raw_len + len + 1)
			cap *= 2;
		raw = realloc(r->raw, cap);
		if (!raw) {
			set_err("out of memory for a %zu byte response", cap);
			return -1;
		}
		r->raw = raw;
		r->cap = cap;
	}
	memcpy(r->raw + r->raw_len, data, len);
	r->raw_len += len;
	r->raw[r->raw_len] = '\0';
	return 0;
}

static void response_parse_head(struct http_response *r)
{
	char val[64], *end;
	const char *hdr_end, *from;

	r->body = r->raw ? r->raw + r->header_len : NULL;
	r->body_len = r->raw ? r->raw_len - r->header_len : 0;
	if (r->header_len || !r->raw)
		return;
	r->status = -1;
	r->content_length = -1;
	from = r->raw;
	hdr_end = memmem(from, r->raw_len, "\r\n\r\n", 4);
	if (!hdr_end)
		return;
	r->header_len = (size_t)(hdr_end - r->raw) + 4;
	r->body = r->raw + r->header_len;
	r->body_len = r->raw_len - r->header_len;
	if (!strncmp(r->raw, "HTTP/1.", 7) && isdigit((unsigned char)r->raw[7]) &&
	    r->raw[8] == ' ' && isdigit((unsigned char)r->raw[9]) &&
	    isdigit((unsigned char)r->raw[10]) && isdigit((unsigned char)r->raw[11]) &&
	    (r->raw[12] == ' ' || r->raw[12] == '\r'))
		r->status = (r->raw[9] - '0') * 100 + (r->raw[10] - '0') * 10 +
			    (r->raw[11] - '0');
	if (http_header(r, "Content-Length", val, sizeof(val)) &&
	    isdigit((unsigned char)val[0])) {
		errno = 0;
		r->content_length = strtol(val, &end, 10);
		if (*end || errno)
			r->content_length = -1;
	}
}

static bool response_complete(struct http_response *r, enum read_mode mode)
{
	response_parse_head(r);
	if (r->eof)
		return true;
	return mode == READ_BY_LENGTH && r->header_len && r->content_length >= 0 &&
	       r->body_len >= (size_t)r->content_length;
}

int tcp_connect(uint16_t port, int timeout_ms)
{
	return tcp_connect_addr("127.0.0.1", port, timeout_ms);
}

int tcp_connect_addr(const char *addr, uint16_t port, int timeout_ms)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
	};
	struct pollfd pfd;
	socklen_t len;
	int fd, ret, soerr;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		set_err("bad IPv4 address %s", addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		set_err("connect %s:%u: %s", addr, port, strerror(errno));
		goto fail;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		set_err("connect %s:%u: %s", addr, port,
			ret ? strerror(errno) : "timed out");
		goto fail;
	}
	len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		set_err("connect %s:%u: %s", addr, port, strerror(soerr ? soerr : errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	do {
		ret = poll(&pfd, 1, remaining_ms(deadline));
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		set_err("poll: %s", strerror(errno));
		return -1;
	}
	return ret;
}

static int send_until(int fd, const void *buf, size_t len, long long deadline)
{
	const char *p = buf;
	ssize_t n;
	int ret;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			set_err("send: %s (%zu bytes not sent)", strerror(errno), len);
			return -1;
		}
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			set_err("send timed out with %zu bytes not sent", len);
			return -1;
		}
	}
	return 0;
}

int send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	return send_until(fd, buf, len, now_ms() + timeout_ms);
}

int send_bytewise(int fd, const void *buf, size_t len, long gap_us)
{
	const char *p = buf;
	int one = 1;
	size_t i;

	/* Without NODELAY, Nagle would coalesce the bytes into fewer segments. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		set_err("setsockopt TCP_NODELAY: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (send_all(fd, p + i, 1, IO_TIMEOUT_MS) < 0)
			return -1;
		if (gap_us)
			sleep_ms(gap_us / 1000 ? gap_us / 1000 : 1);
	}
	return 0;
}

/* One recv into @r; returns 1 when complete, 0 for more, -1 on error. */
static int response_recv(int fd, struct http_response *r, enum read_mode mode,
			 size_t chunk)
{
	char buf[65536];
	enum peer_event ev;
	size_t n;

	if (chunk > sizeof(buf))
		chunk = sizeof(buf);
	ev = recv_event(fd, buf, chunk, &n);
	if (ev == PEER_ERROR)
		return -1;
	if (ev == PEER_DATA && response_append(r, buf, n) < 0)
		return -1;
	/*
	 * A server that closes with request bytes still unread makes the
	 * kernel send RST; what it sent before stays readable.
	 */
	if (ev == PEER_CLOSED || ev == PEER_RESET)
		r->eof = true;
	if (ev == PEER_RESET)
		r->reset = true;
	return response_complete(r, mode) ? 1 : 0;
}

int http_read_slow(int fd, enum read_mode mode, int timeout_ms, size_t chunk,
		   long rcv_delay_us, struct http_response *r)
{
	long long deadline = now_ms() + timeout_ms;
	char q[256];
	int ret;

	r->status = -1;
	r->content_length = -1;
	for (;;) {
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret < 0)
			return -1;
		if (ret == 0) {
			response_parse_head(r);
			set_err("response not complete after %d ms (%s): %zu bytes, starting %s",
				timeout_ms,
				mode == READ_TO_EOF ? "waiting for the server to close" :
						      "waiting for Content-Length bytes or close",
				r->raw_len, quote_bytes(r->raw, r->raw_len < 120 ? r->raw_len : 120,
							q, sizeof(q)));
			return -1;
		}
		ret = response_recv(fd, r, mode, chunk);
		if (ret < 0)
			return -1;
		if (ret > 0)
			break;
		if (rcv_delay_us)
			sleep_ms(rcv_delay_us / 1000 ? rcv_delay_us / 1000 : 1);
	}
	if (!r->header_len) {
		set_err("connection closed after %zu bytes without a complete header %s",
			r->raw_len, quote_bytes(r->raw, r->raw_len < 120 ? r->raw_len : 120,
						q, sizeof(q)));
		return -1;
	}
	return 0;
}

int http_read(int fd, enum read_mode mode, int timeout_ms, struct http_response *r)
{
	return http_read_slow(fd, mode, timeout_ms, 65536, 0, r);
}

int http_exchange(uint16_t port, const char *req, size_t len,
		  enum read_mode mode, struct http_response *r)
{
	int fd, ret;

	fd = tcp_connect(port, IO_TIMEOUT_MS);
	if (fd < 0)
		return -1;
	ret = send_all(fd, req, len, IO_TIMEOUT_MS);
	if (!ret)
		ret = http_read(fd, mode, IO_TIMEOUT_MS, r);
	close(fd);
	return ret;
}

enum { MC_CONNECT, MC_SEND, MC_READ, MC_DONE, MC_FAILED };

struct mclient {
	int fd;
	int state;
	size_t sent;
};

static void mclient_fail(struct mclient *c, int i, bool *failed, const char *what)
{
	/* @what may be last_error itself, which set_err overwrites. */
	char copy[sizeof(last_error)];

	if (!*failed) {
		snprintf(copy, sizeof(copy), "%s", what);
		set_err("client %d: %s", i, copy);
	}
	*failed = true;
	c->state = MC_FAILED;
}

int http_many(uint16_t port, const char *req, int n, enum read_mode mode,
	      int timeout_ms, struct http_response *out)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	long long deadline = now_ms() + timeout_ms;
	size_t req_len = strlen(req);
	struct pollfd *pfd;
	struct mclient *c;
	int i, done = 0, active, ret, soerr;
	bool failed = false;
	socklen_t sl;
	ssize_t sn;
	char msg[160];

	c = calloc((size_t)n, sizeof(*c));
	pfd = calloc((size_t)n, sizeof(*pfd));
	if (!c || !pfd) {
		free(c);
		free(pfd);
		set_err("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		out[i].status = -1;
		out[i].content_length = -1;
		c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c[i].fd < 0) {
			snprintf(msg, sizeof(msg), "socket: %s", strerror(errno));
			mclient_fail(&c[i], i, &failed, msg);
			continue;
		}
		if (connect(c[i].fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			c[i].state = MC_SEND;
		else if (errno == EINPROGRESS)
			c[i].state = MC_CONNECT;
		else {
			snprintf(msg, sizeof(msg), "connect: %s", strerror(errno));
			mclient_fail(&c[i], i, &failed, msg);
		}
	}

	for (;;) {
		active = 0;
		for (i = 0; i < n; i++) {
			pfd[i].fd = -1;
			pfd[i].revents = 0;
			if (c[i].state == MC_DONE || c[i].state == MC_FAILED)
				continue;
			pfd[i].fd = c[i].fd;
			pfd[i].events = c[i].state == MC_READ ? POLLIN : POLLOUT;
			active++;
		}
		if (!active)
			break;
		ret = poll(pfd, (nfds_t)n, remaining_ms(deadline));
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			set_err("poll: %s", strerror(errno));
			break;
		}
		if (ret == 0) {
			for (i = 0; i < n; i++)
				if (c[i].state != MC_DONE && c[i].state != MC_FAILED) {
					snprintf(msg, sizeof(msg),
						 "no complete response within %d ms (state %d, %zu bytes in)",
						 timeout_ms, c[i].state, out[i].raw_len);
					mclient_fail(&c[i], i, &failed, msg);
				}
			break;
		}
		for (i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (c[i].state == MC_CONNECT) {
				sl = sizeof(soerr);
				if (getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
					snprintf(msg, sizeof(msg), "connect: %s",
						 strerror(soerr ? soerr : errno));
					mclient_fail(&c[i], i, &failed, msg);
					continue;
				}
				c[i].state = MC_SEND;
			}
			if (c[i].state == MC_SEND) {
				sn = send(c[i].fd, req + c[i].sent, req_len - c[i].sent, MSG_NOSIGNAL);
				if (sn < 0 && errno != EAGAIN && errno != EINTR) {
					snprintf(msg, sizeof(msg), "send: %s", strerror(errno));
					mclient_fail(&c[i], i, &failed, msg);
					continue;
				}
				if (sn > 0)
					c[i].sent += (size_t)sn;
				if (c[i].sent == req_len)
					c[i].state = MC_READ;
				continue;
			}
			ret = response_recv(c[i].fd, &out[i], mode, 65536);
			if (ret < 0) {
				mclient_fail(&c[i], i, &failed, last_error);
			} else if (ret > 0) {
				if (!out[i].header_len) {
					snprintf(msg, sizeof(msg),
						 "closed after %zu bytes without a complete header",
						 out[i].raw_len);
					mclient_fail(&c[i], i, &failed, msg);
				} else {
					c[i].state = MC_DONE;
					done++;
				}
			}
		}
	}
	for (i = 0; i < n; i++) {
		response_parse_head(&out[i]);
		if (c[i].fd >= 0)
			close(c[i].fd);
	}
	free(c);
	free(pfd);
	return done;
}

/* A head longer than this is not one our servers send. */
#define MAX_RESPONSE_HEAD 65536

long http_take_response(const char *buf, size_t len, struct http_response *r)
{
	size_t head_len, total;
	const char *end;
	char q[256];

	end = memmem(buf, len < MAX_RESPONSE_HEAD ? len : MAX_RESPONSE_HEAD,
		     "\r\n\r\n", 4);
	if (!end) {
		if (len < MAX_RESPONSE_HEAD)
			return 0;
		set_err("no end of a response head in %d bytes: %s", MAX_RESPONSE_HEAD,
			quote_bytes(buf, 120, q, sizeof(q)));
		return -1;
	}
	head_len = (size_t)(end - buf) + 4;
	if (response_append(r, buf, head_len) < 0)
		return -1;
	response_parse_head(r);
	if (r->content_length < 0) {
		set_err("a response without a valid Content-Length cannot be delimited: head %s",
			quote_bytes(buf, head_len, q, sizeof(q)));
		http_response_free(r);
		return -1;
	}
	total = head_len + (size_t)r->content_length;
	if (len < total) {
		/* The body is still on its way: parse it all again next time. */
		http_response_free(r);
		return 0;
	}
	if (response_append(r, buf + head_len, total - head_len) < 0)
		return -1;
	/* Recompute body and body_len, which now span the body. */
	response_parse_head(r);
	return (long)total;
}

int http_read_responses(int fd, int n, int timeout_ms, struct http_response *out)
{
	long long deadline = now_ms() + timeout_ms;
	struct http_response in = { 0 };	/* the byte stream as received */
	bool eof = false, reset = false;
	char buf[65536], q[256];
	int got = 0, ret = -1, w;
	size_t off = 0, left;
	long used;
	ssize_t k;

	for (;;) {
		while (got < n) {
			used = http_take_response(in.raw ? in.raw + off : "",
						  in.raw_len - off, &out[got]);
			if (used < 0) {
				snprintf(buf, sizeof(buf), "%s", last_error);
				set_err("response %d of %d: %s", got + 1, n, buf);
				goto out;
			}
			if (!used)
				break;
			off += (size_t)used;
			got++;
		}
		if (got == n)
			break;
		left = in.raw_len - off;
		if (eof) {
			set_err("connection %s after %d of %d responses, %zu bytes of the next: %s",
				reset ? "reset" : "closed", got, n, left,
				quote_bytes(in.raw + off, left < 120 ? left : 120, q, sizeof(q)));
			goto out;
		}
		w = wait_fd(fd, POLLIN, deadline);
		if (w < 0)
			goto out;
		if (!w) {
			set_err("%d of %d responses within %d ms, %zu bytes of the next: %s",
				got, n, timeout_ms, left,
				quote_bytes(in.raw ? in.raw + off : "", left < 120 ? left : 120,
					    q, sizeof(q)));
			goto out;
		}
		k = recv(fd, buf, sizeof(buf), 0);
		if (k > 0) {
			if (response_append(&in, buf, (size_t)k) < 0)
				goto out;
		} else if (k == 0) {
			eof = true;
		} else if (errno == ECONNRESET) {
			eof = true;
			reset = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			set_err("recv: %s", strerror(errno));
			goto out;
		}
	}
	left = in.raw_len - off;
	if (left) {
		set_err("%zu unexpected bytes after response %d: %s", left, n,
			quote_bytes(in.raw + off, left < 120 ? left : 120, q, sizeof(q)));
		goto out;
	}
	ret = 0;
out:
	http_response_free(&in);
	return ret;
}

struct pconn {
	struct http_response in;	/* bytes received, as a stream */
	size_t off;			/* ... of which responses took this many */
	size_t sent;
	int got;
	bool eof;
};

/* Take the complete responses out of @c's stream; -1 when that fails. */
static int pconn_take(struct pconn *c, int i, int per_conn,
		      struct http_response *out)
{
	char q[256], why[sizeof(last_error)];
	size_t left;
	long used;

	while (c->got < per_conn) {
		used = http_take_response(c->in.raw + c->off, c->in.raw_len - c->off,
					  &out[c->got]);
		if (used < 0) {
			snprintf(why, sizeof(why), "%s", last_error);
			set_err("connection %d, response %d: %s", i, c->got + 1, why);
			return -1;
		}
		if (!used)
			break;
		c->off += (size_t)used;
		c->got++;
	}
	left = c->in.raw_len - c->off;
	if (c->got == per_conn && left) {
		set_err("connection %d: %zu unexpected bytes after its %d responses: %s", i,
			left, per_conn, quote_bytes(c->in.raw + c->off, left < 120 ? left : 120,
						    q, sizeof(q)));
		return -1;
	}
	if (c->eof && c->got < per_conn) {
		set_err("connection %d closed after %d of %d responses (%zu bytes of the next)",
			i, c->got, per_conn, left);
		return -1;
	}
	return 0;
}

int http_many_on(const int *fds, int n, const void *req, size_t len, int per_conn,
		 int timeout_ms, struct http_response *out)
{
	long long deadline = now_ms() + timeout_ms;
	int i, ret = -1, active, pr;
	struct pollfd *pfd;
	struct pconn *c;
	char buf[65536];
	ssize_t k;

	c = calloc((size_t)n, sizeof(*c));
	pfd = calloc((size_t)n, sizeof(*pfd));
	if (!c || !pfd) {
		set_err("out of memory");
		goto out;
	}
	for (;;) {
		active = 0;
		for (i = 0; i < n; i++) {
			pfd[i].fd = -1;
			pfd[i].revents = 0;
			if (c[i].sent == len && c[i].got == per_conn)
				continue;
			pfd[i].fd = fds[i];
			pfd[i].events = c[i].sent < len ? POLLOUT | POLLIN : POLLIN;
			active++;
		}
		if (!active)
			break;
		pr = poll(pfd, (nfds_t)n, remaining_ms(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			set_err("poll: %s", strerror(errno));
			goto out;
		}
		if (!pr) {
			for (i = 0; pfd[i].fd < 0; i++)
				;
			set_err("connection %d: %zu of %zu request bytes sent, %d of %d responses within %d ms",
				i, c[i].sent, len, c[i].got, per_conn, timeout_ms);
			goto out;
		}
		for (i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (c[i].sent < len) {
				k = send(fds[i], (const char *)req + c[i].sent, len - c[i].sent,
					 MSG_NOSIGNAL);
				if (k > 0)
					c[i].sent += (size_t)k;
				else if (k < 0 && errno != EAGAIN && errno != EINTR) {
					set_err("connection %d: send: %s", i, strerror(errno));
					goto out;
				}
			}
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = recv(fds[i], buf, sizeof(buf), 0);
			if (k > 0) {
				if (response_append(&c[i].in, buf, (size_t)k) < 0)
					goto out;
			} else if (!k || errno == ECONNRESET) {
				c[i].eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				set_err("connection %d: recv: %s", i, strerror(errno));
				goto out;
			}
			if (c[i].in.raw && pconn_take(&c[i], i, per_conn, out + (size_t)i * per_conn))
				goto out;
			if (c[i].eof && !c[i].in.raw) {
				set_err("connection %d closed after %d of %d responses", i,
					c[i].got, per_conn);
				goto out;
			}
		}
	}
	ret = 0;
out:
	for (i = 0; c && i < n; i++)
		http_response_free(&c[i].in);
	free(c);
	free(pfd);
	return ret;
}

enum peer_event peer_wait(int fd, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	char buf[512], q[256];
	enum peer_event ev;
	size_t n;
	int ret;

	for (;;) {
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret < 0)
			return PEER_ERROR;
		if (!ret)
			return PEER_SILENT;
		ev = recv_event(fd, buf, sizeof(buf), &n);
		if (ev == PEER_DATA)
			set_err("unexpected bytes (%zu in the first read): %s", n,
				quote_bytes(buf, n, q, sizeof(q)));
		if (ev != PEER_SILENT)
			return ev;
	}
}

enum peer_event recv_event(int fd, void *buf, size_t size, size_t *n)
{
	ssize_t k;

	*n = 0;
	k = recv(fd, buf, size, MSG_DONTWAIT);
	if (k > 0) {
		*n = (size_t)k;
		return PEER_DATA;
	}
	if (!k)
		return PEER_CLOSED;
	if (errno == ECONNRESET)
		return PEER_RESET;
	if (errno == EAGAIN || errno == EINTR)
		return PEER_SILENT;
	set_err("recv: %s", strerror(errno));
	return PEER_ERROR;
}

const char *peer_event_str(enum peer_event ev)
{
	switch (ev) {
	case PEER_SILENT:
		return "nothing (still open)";
	case PEER_CLOSED:
		return "closed (FIN)";
	case PEER_RESET:
		return "reset (RST)";
	case PEER_DATA:
		return "data";
	default:
		return "error";
	}
}

int tcp_abort(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int ret = 0;

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
		set_err("setsockopt SO_LINGER: %s", strerror(errno));
		ret = -1;
	}
	close(fd);
	return ret;
}

bool large_body_ok(const char *body, size_t len, size_t *bad_at)
{
	static const char text[] = NICE_DAY;
	const size_t tlen = sizeof(text) - 1;
	size_t i;

	for (i = 0; i < len; i++) {
		if (body[i] != text[i % tlen]) {
			*bad_at = i;
			return false;
		}
	}
	return true;
}
