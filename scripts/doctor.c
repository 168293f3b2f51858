/* SPDX-License-Identifier: MIT */
/*
 * doctor: is this machine ready for the workshop?
 *
 * What it shows: what each step needs from the kernel, found out the way
 * liburing's own tests do, by trying it: a ring is set up, the opcode probe
 * is read, setup flags are tried (-EINVAL means "not on this kernel"), and
 * where no probe can tell (multishot recv, the zero-copy usage report) the
 * behaviour itself is tried once over a loopback connection. The kernel
 * release is printed for information only: distributions backport, so a
 * version number proves nothing either way.
 *
 * It prints a few facts about the machine, then one verdict per step,
 *	step05_peek_spin: ready
 *	step06_multishot_bufring: will not run: <reason>. Fix: <command>
 * then one overall line, and exits 0 when every step can run, 1 otherwise.
 * It needs no root, and should be run as the user who will run the
 * servers: limits and privileges are per user.
 *
 * Run it:
 *	make doctor
 *	runuser -u nobody -- scripts/doctor	(as root: the unprivileged view)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <liburing.h>

/* ==================== What the servers use ==================== */

/* The same values as the servers' own, so that a trial is their setup. */
#define QUEUE_DEPTH		256	/* SQ entries */
#define CQ_ENTRIES		4096	/* IORING_SETUP_CQSIZE */
#define SQ_THREAD_IDLE_MS	100	/* steps 04-07 */
#define MAX_CONNS		1024	/* step 06-07 default -c: fixed-file table */
#define DEFAULT_BUFFERS		256	/* step 06-07 default -B */
#define BUFFER_SIZE		4096
#define BUFFER_GROUP		0
#define DEFAULT_LARGE_BYTES	(1024 * 1024)		/* default -l */
#define BIG_LARGE_BYTES		(16 * 1024 * 1024)	/* the README's -l 16777216 */
#define HEAD_BYTES		200	/* at most, the response head before /large's body */
#define OP_FIXED_FD_INSTALL	54	/* IORING_OP_FIXED_FD_INSTALL, Linux 6.8 */
#ifndef IORING_SEND_ZC_REPORT_USAGE	/* liburing 2.3's header predates it */
#define IORING_SEND_ZC_REPORT_USAGE	(1U << 3)
#endif
#define CAP_IPC_LOCK_BIT	14
#define WAIT_MS			1000	/* longest wait for one trial's completion */

/* Proposed whenever only a newer kernel helps. Debian's is 6.1 or newer. */
#define NEWER_KERNEL \
	"sudo apt-get install -y linux-image-$(dpkg --print-architecture) && sudo reboot (Linux 6.1 or newer)"

/* A container's seccomp profile: the run option that lifts it. */
#define SECCOMP_FIX	"docker run --security-opt seccomp=unconfined ..."

/* ==================== Features ==================== */

/*
 * Everything a step may need, each found out once. F_NONE ends the lists
 * in the step table below, so it must stay 0.
 */
enum feature_id {
	F_NONE,
	F_SOCKET,		/* a TCP listener on 127.0.0.1 */
	F_RING,			/* io_uring_queue_init, and a NOP through it */
	F_PROBE,		/* IORING_REGISTER_PROBE */
	F_OP_ACCEPT,
	F_OP_RECV,
	F_OP_SEND,
	F_OP_CLOSE,
	F_OP_TIMEOUT,
	F_OP_SHUTDOWN,
	F_OP_LINK_TIMEOUT,
	F_OP_ASYNC_CANCEL,
	F_OP_TIMEOUT_REMOVE,
	F_COOP_TASKRUN,		/* optional: steps 02-03 fall back */
	F_SQPOLL,		/* for this user */
	F_FILES,		/* 1024 sparse fixed files */
	F_BUF_RING,
	F_MSHOT_ACCEPT,
	F_MSHOT_RECV,
	F_CANCEL_FD_FIXED,
	F_SEND_ZC,		/* optional: step 07 sends plainly without it */
	F_ZC_REPORT,		/* optional: IORING_SEND_ZC_REPORT_USAGE */
	F_FIXED_FD_INSTALL,	/* optional: step 07 resets stuck clients at exit */
	F_DEFER_TASKRUN,	/* the epilogue: SINGLE_ISSUER | DEFER_TASKRUN */
	F_COUNT,
};

enum state { UNTRIED, YES, NO };

struct feature {
	enum state state;
	char why[256];		/* when NO: the reason, or for an optional one, what changes */
	char fix[256];		/* when NO and required: the command that helps */
};

static struct feature features[F_COUNT];

static void set_yes(enum feature_id f)
{
	features[f].state = YES;
}

static void __attribute__((format(printf, 3, 4)))
set_no(enum feature_id f, const char *fix, const char *fmt, ...)
{
	va_list ap;

	features[f].state = NO;
	va_start(ap, fmt);
	vsnprintf(features[f].why, sizeof(features[f].why), fmt, ap);
	va_end(ap);
	snprintf(features[f].fix, sizeof(features[f].fix), "%s", fix ? fix : "");
}

/* ==================== Facts about the machine ==================== */

static struct {
	struct utsname uts;
	int have_uts;
	char user[64];
	int root;
	int cap_ipc_lock;
	int seccomp;		/* /proc/self/status: 0 none, 1 strict, 2 filter, -1 unknown */
	long io_uring_disabled;	/* -1: no such sysctl (before Linux 6.6) */
	long io_uring_group;	/* -1: none */
	int cores;
	struct rlimit nofile;	/* read before liburing raises the soft one */
	struct rlimit memlock;
} m;

/* Read one number from a file such as /proc/sys/kernel/io_uring_disabled. */
static long read_number(const char *path, long missing)
{
	FILE *f = fopen(path, "r");
	long v;

	if (!f)
		return missing;
	if (fscanf(f, "%ld", &v) != 1)
		v = missing;
	fclose(f);
	return v;
}

static void read_status(void)
{
	unsigned long long caps;
	char line[256];
	FILE *f;

	m.seccomp = -1;
	f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			m.cap_ipc_lock = !!(caps & (1ULL << CAP_IPC_LOCK_BIT));
		else
			sscanf(line, "Seccomp: %d", &m.seccomp);
	}
	fclose(f);
}

static void read_facts(void)
{
	struct passwd *pw;
	cpu_set_t set;

	m.have_uts = uname(&m.uts) == 0;
	pw = getpwuid(geteuid());
	if (pw)
		snprintf(m.user, sizeof(m.user), "%s", pw->pw_name);
	else
		snprintf(m.user, sizeof(m.user), "uid %u", (unsigned int)geteuid());
	m.root = geteuid() == 0;
	read_status();
	m.io_uring_disabled = read_number("/proc/sys/kernel/io_uring_disabled", -1);
	m.io_uring_group = read_number("/proc/sys/kernel/io_uring_group", -1);
	/* What nproc says: the cores this process may run on. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		m.cores = CPU_COUNT(&set);
	else
		m.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (getrlimit(RLIMIT_NOFILE, &m.nofile))
		m.nofile.rlim_cur = m.nofile.rlim_max = RLIM_INFINITY;
	if (getrlimit(RLIMIT_MEMLOCK, &m.memlock))
		m.memlock.rlim_cur = m.memlock.rlim_max = RLIM_INFINITY;
}

/* ==================== Trials ==================== */

static int open_listener(void)
{
	struct sockaddr_in sa;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;	/* any free port */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* A client connected to listen_fd; loopback connects complete at once. */
static int connect_to(int listen_fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd;

	if (getsockname(listen_fd, (struct sockaddr *)&sa, &len))
		return -errno;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, len)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/*
 * Wait for the completion tagged user_data, skipping others, for at most
 * WAIT_MS. Returns 0 with its res and flags, or -ETIME.
 */
static int wait_for(struct io_uring *ring, __u64 user_data, int *res,
		    unsigned int *flags)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000 };
	struct io_uring_cqe *cqe;
	int tries, ret;

	for (tries = 0; tries < WAIT_MS / 100; tries++) {
		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (ret == -ETIME || ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		if (cqe->user_data == user_data) {
			*res = cqe->res;
			*flags = cqe->flags;
			io_uring_cqe_seen(ring, cqe);
			return 0;
		}
		io_uring_cqe_seen(ring, cqe);
	}
	return -ETIME;
}

/*
 * Submit what is queued (one SQE) and wait for its completion. What
 * io_uring_submit() returns is no proof of anything here: with SQPOLL,
 * liburing counts the entries the SQ thread has not taken yet, so 0 when
 * it took ours before the count was read, or more when it lags behind.
 * Only our own completion, found by its user_data, says the trial ran.
 */
static int submit_and_wait(struct io_uring *ring, __u64 user_data, int *res,
			   unsigned int *flags)
{
	int ret = io_uring_submit(ring);

	if (ret < 0)
		return ret;
	return wait_for(ring, user_data, res, flags);
}

static struct io_uring_sqe *next_sqe(struct io_uring *ring, __u64 user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	/* The trials queue one at a time into a 256-entry SQ: a bug, if so. */
	if (!sqe) {
		fprintf(stderr, "doctor: no free SQE\n");
		exit(2);
	}
	io_uring_sqe_set_data64(sqe, user_data);
	return sqe;
}

/*
 * Why io_uring_setup failed, and what helps. kernel.io_uring_disabled
 * (Linux 6.6) and seccomp filters both answer EPERM; a seccomp filter may
 * answer ENOSYS too, like a kernel built without io_uring.
 */
static void explain_setup_error(int err)
{
	char fix[256];

	if ((err == EPERM || err == EACCES) && m.io_uring_disabled == 2) {
		set_no(F_RING, "sudo sysctl -w kernel.io_uring_disabled=0",
		       "io_uring is disabled on this machine (kernel.io_uring_disabled = 2)");
	} else if ((err == EPERM || err == EACCES) && m.io_uring_disabled == 1) {
		if (m.io_uring_group >= 0)
			snprintf(fix, sizeof(fix),
				 "sudo usermod -aG $(getent group %ld | cut -d: -f1) %s (then log in again), or sudo sysctl -w kernel.io_uring_disabled=0",
				 m.io_uring_group, m.user);
		else
			snprintf(fix, sizeof(fix), "sudo sysctl -w kernel.io_uring_disabled=0");
		if (m.io_uring_group >= 0)
			set_no(F_RING, fix,
			       "io_uring is reserved to root and group %ld here (kernel.io_uring_disabled = 1)",
			       m.io_uring_group);
		else
			set_no(F_RING, fix,
			       "io_uring is reserved to root here (kernel.io_uring_disabled = 1)");
	} else if ((err == EPERM || err == EACCES || err == ENOSYS) && m.seccomp == 2) {
		set_no(F_RING, SECCOMP_FIX,
		       "a seccomp filter refuses io_uring_setup (%s), as containers' default profiles do",
		       strerror(err));
	} else if (err == ENOSYS) {
		set_no(F_RING, NEWER_KERNEL,
		       "this kernel has no io_uring (io_uring_setup: %s)", strerror(err));
	} else if (err == ENOMEM) {
		set_no(F_RING, "ulimit -l 8192 (the hard limit needs root to raise)",
		       "no memory for a ring (io_uring_setup: %s): rings count against ulimit -l",
		       strerror(err));
	} else {
		set_no(F_RING, NEWER_KERNEL, "io_uring_setup: %s", strerror(err));
	}
}

/*
 * Rings, and what is registered with them, count against RLIMIT_MEMLOCK
 * for users without CAP_IPC_LOCK, summed over all their processes. The
 * kernel gives a ring's share back some time after io_uring_queue_exit()
 * (or after a server's exit), not at once: an ENOMEM may only mean that
 * the doctor's previous ring, or a server stopped just before, is still
 * being torn down. So such setups are tried again for a moment.
 */
#define ENOMEM_RETRIES		20
#define ENOMEM_RETRY_MS		100

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int init_ring(struct io_uring *ring, struct io_uring_params *p)
{
	struct io_uring_params copy = *p;
	int ret, tries;

	for (tries = 0; ; tries++) {
		*p = copy;	/* the kernel writes its answers into p */
		ret = io_uring_queue_init_params(QUEUE_DEPTH, ring, p);
		if (ret != -ENOMEM || tries == ENOMEM_RETRIES)
			return ret;
		pause_ms(ENOMEM_RETRY_MS);
	}
}

/*
 * A ring as steps 02-03 make it: with COOP_TASKRUN (Linux 5.19), and
 * without it when the kernel answers -EINVAL; a NOP round trip proves
 * io_uring_enter too. The opcode probe is read from it.
 */
static int try_ring(struct io_uring *ring)
{
	struct io_uring_params p;
	struct io_uring_sqe *sqe;
	unsigned int flags;
	int ret, res;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = CQ_ENTRIES;
	ret = init_ring(ring, &p);
	if (ret == -EINVAL) {
		set_no(F_COOP_TASKRUN, NULL,
		       "without IORING_SETUP_COOP_TASKRUN (Linux 5.19), a little more CPU per request");
		p.flags &= ~IORING_SETUP_COOP_TASKRUN;
		ret = init_ring(ring, &p);
	} else if (ret == 0) {
		set_yes(F_COOP_TASKRUN);
	}
	if (ret < 0) {
		explain_setup_error(-ret);
		return -1;
	}
	sqe = next_sqe(ring, 1);
	io_uring_prep_nop(sqe);
	ret = submit_and_wait(ring, 1, &res, &flags);
	if (ret < 0) {
		/* setup passed but enter did not: a filter that knows them apart */
		set_no(F_RING, m.seccomp == 2 ? SECCOMP_FIX : NEWER_KERNEL,
		       "io_uring_enter: %s%s", strerror(-ret),
		       m.seccomp == 2 ? " (a seccomp filter is active)" : "");
		io_uring_queue_exit(ring);
		return -1;
	}
	set_yes(F_RING);
	return 0;
}

static const struct {
	enum feature_id id;
	int op;
	const char *name;
	const char *since;
} ops[] = {
	{ F_OP_ACCEPT, IORING_OP_ACCEPT, "IORING_OP_ACCEPT", "5.5" },
	{ F_OP_RECV, IORING_OP_RECV, "IORING_OP_RECV", "5.6" },
	{ F_OP_SEND, IORING_OP_SEND, "IORING_OP_SEND", "5.6" },
	{ F_OP_CLOSE, IORING_OP_CLOSE, "IORING_OP_CLOSE", "5.6" },
	{ F_OP_TIMEOUT, IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT", "5.4" },
	{ F_OP_SHUTDOWN, IORING_OP_SHUTDOWN, "IORING_OP_SHUTDOWN", "5.11" },
	{ F_OP_LINK_TIMEOUT, IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT", "5.5" },
	{ F_OP_ASYNC_CANCEL, IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL", "5.5" },
	{ F_OP_TIMEOUT_REMOVE, IORING_OP_TIMEOUT_REMOVE, "IORING_OP_TIMEOUT_REMOVE", "5.5" },
	{ F_SEND_ZC, IORING_OP_SEND_ZC, "IORING_OP_SEND_ZC", "6.0" },
	{ F_FIXED_FD_INSTALL, OP_FIXED_FD_INSTALL, "IORING_OP_FIXED_FD_INSTALL", "6.8" },
};

static void probe_ops(struct io_uring *ring)
{
	struct io_uring_probe *probe;
	unsigned int i;

	probe = io_uring_get_probe_ring(ring);
	if (!probe) {
		/* liburing keeps the error to itself: ask once more for it. */
		struct io_uring_probe *p = calloc(1, sizeof(*p) + 256 * sizeof(p->ops[0]));
		int ret = p ? io_uring_register_probe(ring, p, 256) : -ENOMEM;

		free(p);
		if (m.seccomp == 2 && (ret == -EPERM || ret == -ENOSYS))
			set_no(F_PROBE, SECCOMP_FIX,
			       "a seccomp filter refuses io_uring_register (%s)", strerror(-ret));
		else
			set_no(F_PROBE, NEWER_KERNEL,
			       "the kernel cannot list its io_uring operations (IORING_REGISTER_PROBE, Linux 5.6: %s)",
			       strerror(-ret));
		return;
	}
	set_yes(F_PROBE);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (io_uring_opcode_supported(probe, ops[i].op))
			set_yes(ops[i].id);
		else
			set_no(ops[i].id, NEWER_KERNEL,
			       "this kernel lacks %s (Linux %s)", ops[i].name, ops[i].since);
	}
	io_uring_free_probe(probe);
	/* For the optional ones, say what the server does without them. */
	if (features[F_SEND_ZC].state == NO)
		set_no(F_SEND_ZC, NULL,
		       "without zero-copy: this kernel lacks IORING_OP_SEND_ZC (Linux 6.0), large bodies go by plain send");
	if (features[F_FIXED_FD_INSTALL].state == NO)
		set_no(F_FIXED_FD_INSTALL, NULL,
		       "at exit, clients that stopped reading are closed, not reset (IORING_OP_FIXED_FD_INSTALL: Linux 6.8)");
}

/* A ring as steps 04-07 make it: the kernel's SQ thread submits for us. */
static int try_sqpoll(struct io_uring *ring)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SQPOLL;
	p.cq_entries = CQ_ENTRIES;
	p.sq_thread_idle = SQ_THREAD_IDLE_MS;
	ret = init_ring(ring, &p);
	if (ret == -EPERM) {
		set_no(F_SQPOLL, "run the server as root (sudo), or " NEWER_KERNEL,
		       "IORING_SETUP_SQPOLL is refused to %s (unprivileged SQPOLL: Linux 5.13)",
		       m.user);
		return -1;
	}
	if (ret == -ENOMEM) {
		set_no(F_SQPOLL, "ulimit -l 8192 (the hard limit needs root to raise)",
		       "no memory for a ring (io_uring_setup: %s): rings count against ulimit -l",
		       strerror(-ret));
		return -1;
	}
	if (ret < 0) {
		set_no(F_SQPOLL, NEWER_KERNEL, "IORING_SETUP_SQPOLL: %s", strerror(-ret));
		return -1;
	}
	set_yes(F_SQPOLL);
	return 0;
}

/*
 * A ring as the epilogue makes it: no SQ thread, the completions' task
 * work deferred to the thread that waits (Linux 6.1; -EINVAL before).
 * Its other trials are those of steps 06-07, made on their ring.
 */
static void try_defer_taskrun(void)
{
	struct io_uring_params p;
	struct io_uring ring;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = CQ_ENTRIES;
	ret = init_ring(&ring, &p);
	if (ret == -EINVAL) {
		set_no(F_DEFER_TASKRUN, NEWER_KERNEL,
		       "IORING_SETUP_DEFER_TASKRUN is refused (it needs Linux 6.1)");
		return;
	}
	if (ret < 0) {
		set_no(F_DEFER_TASKRUN, NEWER_KERNEL,
		       "IORING_SETUP_DEFER_TASKRUN: %s", strerror(-ret));
		return;
	}
	io_uring_queue_exit(&ring);
	set_yes(F_DEFER_TASKRUN);
}

/*
 * Steps 06-07 register MAX_CONNS empty fixed-file slots. The kernel
 * refuses a table larger than RLIMIT_NOFILE with EMFILE; liburing then
 * raises the soft limit up to the hard one and tries again, as the
 * servers' own call does. When even that fails, the rest of the trials go
 * on with a small table, so that they still say what the kernel can do.
 * Returns -1 when there is no table at all.
 */
static int files_short;		/* the table failed for want of open files */

static int try_files(struct io_uring *ring)
{
	char fix[256];
	long fits;
	int ret;

	ret = io_uring_register_files_sparse(ring, MAX_CONNS);
	if (ret == 0) {
		set_yes(F_FILES);
		return 0;
	}
	if (ret == -EMFILE) {
		/* A few descriptors stay for stdio, the listener and the ring. */
		fits = m.nofile.rlim_max == RLIM_INFINITY ? MAX_CONNS : (long)m.nofile.rlim_max - 8;
		if (fits < 1)
			fits = 1;
		snprintf(fix, sizeof(fix),
			 "ulimit -n 4096 (the hard limit needs root to raise), or run it with -c %ld", fits);
		set_no(F_FILES, fix,
		       "ulimit -n allows %llu open files, fewer than the %d fixed files of the default -c",
		       (unsigned long long)m.nofile.rlim_max, MAX_CONNS);
		files_short = 1;
	} else if (m.seccomp == 2 && (ret == -EPERM || ret == -ENOSYS)) {
		set_no(F_FILES, SECCOMP_FIX,
		       "a seccomp filter refuses io_uring_register (%s)", strerror(-ret));
	} else {
		set_no(F_FILES, NEWER_KERNEL,
		       "no sparse fixed-file table (io_uring_register_files_sparse: %s; Linux 5.19)",
		       strerror(-ret));
	}
	return io_uring_register_files_sparse(ring, 8) ? -1 : 0;
}

/*
 * The provided buffer ring, as step 06 sets it up: liburing 2.3 has no
 * io_uring_setup_buf_ring(), so page-aligned memory, init, register. Only
 * a few buffers are handed to the kernel: the trials need one.
 */
static struct io_uring_buf_ring *buf_ring;
static size_t buf_ring_size;
static char buf_pool[4][BUFFER_SIZE];

static void try_buf_ring(struct io_uring *ring)
{
	struct io_uring_buf_reg reg;
	unsigned int i;
	int ret;

	buf_ring_size = DEFAULT_BUFFERS * sizeof(struct io_uring_buf);
	buf_ring = mmap(NULL, buf_ring_size, PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (buf_ring == MAP_FAILED) {
		buf_ring = NULL;
		set_no(F_BUF_RING, NEWER_KERNEL, "mmap for a buffer ring: %s", strerror(errno));
		return;
	}
	io_uring_buf_ring_init(buf_ring);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)buf_ring;
	reg.ring_entries = DEFAULT_BUFFERS;
	reg.bgid = BUFFER_GROUP;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret) {
		set_no(F_BUF_RING, NEWER_KERNEL,
		       "no provided buffer rings (io_uring_register_buf_ring: %s; Linux 5.19)",
		       strerror(-ret));
		return;
	}
	for (i = 0; i < 4; i++)
		io_uring_buf_ring_add(buf_ring, buf_pool[i], BUFFER_SIZE, i,
				      io_uring_buf_ring_mask(DEFAULT_BUFFERS), i);
	io_uring_buf_ring_advance(buf_ring, 4);
	set_yes(F_BUF_RING);
}

/*
 * Over one loopback connection, what steps 06-07 do to every client:
 * multishot accept into the fixed table, multishot recv from the buffer
 * ring, cancel by fixed file. The probe cannot see the multishot flavours
 * (the opcodes are older), so each is tried, and the first completion says:
 * a result with IORING_CQE_F_MORE means the request stays armed; -EINVAL
 * means this kernel does not know the flag.
 */
enum { UD_ACCEPT = 10, UD_RECV, UD_CANCEL, UD_SEND_ZC };

static void try_multishot(struct io_uring *ring, int listen_fd, int client)
{
	struct io_uring_sqe *sqe;
	unsigned int flags;
	int ret, res, slot;

	sqe = next_sqe(ring, UD_ACCEPT);
	io_uring_prep_multishot_accept_direct(sqe, listen_fd, NULL, NULL, 0);
	ret = submit_and_wait(ring, UD_ACCEPT, &res, &flags);
	if (ret < 0) {
		set_no(F_MSHOT_ACCEPT, NEWER_KERNEL, "multishot accept: %s", strerror(-ret));
		return;
	}
	if (res == -EINVAL) {
		set_no(F_MSHOT_ACCEPT, NEWER_KERNEL,
		       "this kernel lacks multishot accept (IORING_ACCEPT_MULTISHOT: Linux 5.19)");
		return;
	}
	if (res < 0 || !(flags & IORING_CQE_F_MORE)) {
		set_no(F_MSHOT_ACCEPT, NEWER_KERNEL,
		       "multishot accept into the fixed table ended at once (%s)",
		       res < 0 ? strerror(-res) : "no IORING_CQE_F_MORE");
		return;
	}
	set_yes(F_MSHOT_ACCEPT);
	slot = res;

	if (features[F_BUF_RING].state != YES)
		return;
	/* Sent first: the recv finds it waiting in the socket, or soon after. */
	if (write(client, "x", 1) != 1) {
		set_no(F_MSHOT_RECV, "sudo ip link set lo up", "write to a loopback socket: %s", strerror(errno));
		return;
	}
	sqe = next_sqe(ring, UD_RECV);
	io_uring_prep_recv_multishot(sqe, slot, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUFFER_GROUP;
	ret = submit_and_wait(ring, UD_RECV, &res, &flags);
	if (ret < 0)
		set_no(F_MSHOT_RECV, NEWER_KERNEL, "multishot recv: %s", strerror(-ret));
	else if (res == -EINVAL)
		set_no(F_MSHOT_RECV, NEWER_KERNEL,
		       "this kernel lacks multishot recv (IORING_RECV_MULTISHOT: Linux 6.0)");
	else if (res != 1 || !(flags & IORING_CQE_F_MORE))
		set_no(F_MSHOT_RECV, NEWER_KERNEL,
		       "multishot recv ended at once (%s)",
		       res < 0 ? strerror(-res) : "no IORING_CQE_F_MORE");
	else
		set_yes(F_MSHOT_RECV);

	if (features[F_OP_ASYNC_CANCEL].state != YES)
		return;
	sqe = next_sqe(ring, UD_CANCEL);
	io_uring_prep_cancel_fd(sqe, slot, IORING_ASYNC_CANCEL_FD_FIXED);
	ret = submit_and_wait(ring, UD_CANCEL, &res, &flags);
	/* -ENOENT: the flag was understood, there was just nothing to cancel. */
	if (ret < 0)
		set_no(F_CANCEL_FD_FIXED, NEWER_KERNEL, "cancel by fixed file: %s", strerror(-ret));
	else if (res == -EINVAL)
		set_no(F_CANCEL_FD_FIXED, NEWER_KERNEL,
		       "this kernel cannot cancel by fixed file (IORING_ASYNC_CANCEL_FD_FIXED: Linux 6.0)");
	else if (res < 0 && res != -ENOENT)
		set_no(F_CANCEL_FD_FIXED, NEWER_KERNEL, "cancel by fixed file: %s", strerror(-res));
	else
		set_yes(F_CANCEL_FD_FIXED);
}

/*
 * IORING_SEND_ZC_REPORT_USAGE (Linux 6.2) lets step 07 count the sends
 * the kernel copied after all; an older kernel answers -EINVAL. One byte
 * from the client's side is enough to find out.
 */
static void try_zc_report(struct io_uring *ring, int client)
{
	static const char byte = 'x';
	struct io_uring_sqe *sqe;
	unsigned int flags;
	int ret, res;

	sqe = next_sqe(ring, UD_SEND_ZC);
	io_uring_prep_send_zc(sqe, client, &byte, 1, MSG_NOSIGNAL,
			      IORING_SEND_ZC_REPORT_USAGE);
	ret = submit_and_wait(ring, UD_SEND_ZC, &res, &flags);
	if (ret == 0 && res == 1 && (flags & IORING_CQE_F_MORE)) {
		/* The notification follows: the kernel has let go of byte. */
		if (wait_for(ring, UD_SEND_ZC, &res, &flags) == 0 &&
		    (flags & IORING_CQE_F_NOTIF)) {
			set_yes(F_ZC_REPORT);
			return;
		}
		set_no(F_ZC_REPORT, NULL,
		       "the zero-copy send's notification did not come within %d ms", WAIT_MS);
		return;
	}
	if (ret == 0 && res == -EINVAL)
		set_no(F_ZC_REPORT, NULL,
		       "zero-copy, but without telling copied sends apart (IORING_SEND_ZC_REPORT_USAGE: Linux 6.2)");
	else if (ret == 0 && (res == -ENOMEM || res == -ENOBUFS))
		/* Zero-copy pins the pages it sends, against ulimit -l too. */
		set_no(F_ZC_REPORT, NULL,
		       "zero-copy sends fail here: ulimit -l leaves no room to pin a page (%s)",
		       strerror(-res));
	else
		set_no(F_ZC_REPORT, NULL, "a zero-copy send failed: %s",
		       ret < 0 ? strerror(-ret) : res < 0 ? strerror(-res) : "no notification");
}

/* ==================== Locked memory (step 07) ==================== */

/* Pages an io_uring_register_buffers() of this buffer pins and accounts. */
static size_t pages_spanned(const void *p, size_t len)
{
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	unsigned long start = (unsigned long)p, end = start + len - 1;

	return end / page - start / page + 1;
}

struct memlock_trial {
	size_t large;		/* -l */
	size_t need_kib;	/* what the two registered responses pin */
	int ret;		/* io_uring_register_buffers, or 1: not tried */
};

/*
 * Step 07 registers its two /large responses (keep-alive and close), each
 * the body and a head of under HEAD_BYTES, allocated with malloc as it does.
 * Without CAP_IPC_LOCK the pinned pages count against RLIMIT_MEMLOCK,
 * summed over every process of the user. The trial is the answer; the
 * page count only explains it.
 */
static void try_memlock(struct io_uring *ring, struct memlock_trial *t)
{
	struct iovec iov[2];
	int i, tries;

	t->ret = 1;
	t->need_kib = 0;
	for (i = 0; i < 2; i++) {
		iov[i].iov_len = t->large + HEAD_BYTES;
		iov[i].iov_base = malloc(iov[i].iov_len);
		if (!iov[i].iov_base) {
			fprintf(stderr, "doctor: out of memory for %zu bytes\n", iov[i].iov_len);
			t->ret = -ENOMEM;
			goto out;
		}
		t->need_kib += pages_spanned(iov[i].iov_base, iov[i].iov_len) *
			       (sysconf(_SC_PAGESIZE) / 1024);
	}
	/* Accounting does not apply: no need to pin 32 MiB to learn that. */
	if (m.cap_ipc_lock || m.memlock.rlim_cur == RLIM_INFINITY) {
		t->ret = 0;
		goto out;
	}
	for (tries = 0; ; tries++) {
		t->ret = io_uring_register_buffers(ring, iov, 2);
		/* Worth waiting for memory being given back only if it might fit. */
		if (t->ret != -ENOMEM || tries == ENOMEM_RETRIES ||
		    t->need_kib > m.memlock.rlim_cur / 1024)
			break;
		pause_ms(ENOMEM_RETRY_MS);
	}
	if (t->ret == 0 && io_uring_unregister_buffers(ring))
		fprintf(stderr, "doctor: io_uring_unregister_buffers failed\n");
out:
	while (i-- > 0)
		free(iov[i].iov_base);
}

/* ==================== Tools ==================== */

static int in_path(const char *name)
{
	const char *path = getenv("PATH");
	char file[4096];
	const char *p, *end;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		if (end == p)
			continue;
		if (snprintf(file, sizeof(file), "%.*s/%s", (int)(end - p), p, name) >= (int)sizeof(file))
			continue;
		if (access(file, X_OK) == 0)
			return 1;
	}
	return 0;
}

/* pkg-config --modversion MODULE into out, or "" when it is not there. */
static void pkg_version(const char *module, char *out, size_t size)
{
	char cmd[128];
	FILE *f;

	out[0] = '\0';
	if (!in_path("pkg-config"))
		return;
	snprintf(cmd, sizeof(cmd), "pkg-config --modversion %s 2>/dev/null", module);
	f = popen(cmd, "r");
	if (!f)
		return;
	if (!fgets(out, size, f))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (pclose(f) != 0)
		out[0] = '\0';
}

static int version_at_least(const char *v, int major, int minor)
{
	int ma, mi;

	if (sscanf(v, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* Add a package to a space-separated list. */
static void need_package(char *list, size_t size, const char *pkg)
{
	size_t len = strlen(list);

	snprintf(list + len, size - len, "%s%s", len ? " " : "", pkg);
}

static void print_install(const char *label, const char *packages)
{
	if (in_path("apt-get"))
		printf("%-11s needs %s. Fix: sudo apt-get update && sudo apt-get install -y %s\n",
		       label, packages, packages);
	else
		printf("%-11s needs %s. Fix: install them with your package manager\n",
		       label, packages);
}

static void report_tools(void)
{
	char uring[64], check[64], core[256] = "", bench[256] = "";
	const char *tracefs = NULL;

	pkg_version("liburing", uring, sizeof(uring));
	pkg_version("check", check, sizeof(check));
	if (!in_path("pkg-config"))
		need_package(core, sizeof(core), "pkg-config");
	if (!version_at_least(uring, 2, 3))
		need_package(core, sizeof(core), "liburing-dev");
	if (!check[0])
		need_package(core, sizeof(core), "check");
	if (!in_path("strace"))
		need_package(core, sizeof(core), "strace");
	printf("%-11s liburing %s, check %s, pkg-config %s, strace %s\n", "tools",
	       uring[0] ? uring : "missing", check[0] ? check : "missing",
	       in_path("pkg-config") ? "yes" : "missing",
	       in_path("strace") ? "yes" : "missing");
	if (core[0])
		print_install("make test", core);
	if (!in_path("wrk"))
		need_package(bench, sizeof(bench), "wrk");
	if (!in_path("ab"))
		need_package(bench, sizeof(bench), "apache2-utils");
	if (bench[0])
		print_install("make bench", bench);
	else
		printf("%-11s wrk and ab installed\n", "make bench");

	if (access("/sys/kernel/tracing/trace", R_OK) == 0)
		tracefs = "/sys/kernel/tracing";
	else if (access("/sys/kernel/debug/tracing/trace", R_OK) == 0)
		tracefs = "/sys/kernel/debug/tracing";
	if (tracefs)
		printf("%-11s %s readable; trace-cmd %s\n", "tracing", tracefs,
		       in_path("trace-cmd") ? "installed" : "missing. Fix: sudo apt-get install -y trace-cmd");
	else
		printf("%-11s tracefs is not readable by %s: tracing io_uring's events needs root (sudo)\n",
		       "tracing", m.user);
}

/* ==================== Report ==================== */

static void report_facts(void)
{
	char disabled[64];

	printf("%-11s %s (information only: the verdicts come from trials)\n",
	       "kernel", m.have_uts ? m.uts.release : "unknown");
	printf("%-11s %s%s\n", "user", m.user,
	       m.root ? " (run the doctor as the workshop's user too: limits and privileges differ)" :
	       m.cap_ipc_lock ? ", with CAP_IPC_LOCK" : "");
	if (m.io_uring_disabled < 0)
		snprintf(disabled, sizeof(disabled), "no kernel.io_uring_disabled sysctl");
	else
		snprintf(disabled, sizeof(disabled), "kernel.io_uring_disabled = %ld",
			 m.io_uring_disabled);
	printf("%-11s %s (%s, %s)\n", "io_uring",
	       features[F_RING].state == YES ? "works" : "does not work", disabled,
	       m.seccomp == 2 ? "a seccomp filter is active" :
	       m.seccomp == 0 ? "no seccomp filter" : "seccomp unknown");
	/* MSG_WAITALL on a send (5.18) cannot be probed; COOP_TASKRUN (5.19) implies it. */
	if (features[F_COOP_TASKRUN].state == YES)
		printf("%-11s MSG_WAITALL on io_uring sends (steps 03-07, Linux 5.18): yes, as COOP_TASKRUN (5.19) is\n",
		       "sends");
	else
		printf("%-11s MSG_WAITALL on io_uring sends (steps 03-07) needs Linux 5.18: not probeable, see the kernel\n",
		       "sends");
	if (m.cores <= 1)
		printf("%-11s 1: steps 04-07 poll in the kernel's SQ thread, 05-07 spin ours too: the client starves, answers are slow\n",
		       "cores");
	else if (m.cores <= 2)
		printf("%-11s %d: steps 04-07 poll in the kernel's SQ thread, 05-07 spin ours too: they compete with the client, figures vary\n",
		       "cores", m.cores);
	else
		printf("%-11s %d: enough for the spinning steps (04-07) and a client\n",
		       "cores", m.cores);
}

static void print_limit(const char *label, rlim_t v, int kib)
{
	if (v == RLIM_INFINITY)
		printf("%s unlimited", label);
	else if (kib)
		printf("%s %llu KiB", label, (unsigned long long)v / 1024);
	else
		printf("%s %llu", label, (unsigned long long)v);
}

static void report_nofile(void)
{
	printf("%-11s ", "ulimit -n");
	print_limit("soft", m.nofile.rlim_cur, 0);
	print_limit(", hard", m.nofile.rlim_max, 0);
	if (features[F_FILES].state == YES)
		printf(": the %d fixed files of steps 06-07 (-c %d) fit%s\n", MAX_CONNS, MAX_CONNS,
		       m.nofile.rlim_cur != RLIM_INFINITY && m.nofile.rlim_cur < MAX_CONNS ?
		       " (liburing raises the soft limit)" : "");
	else if (files_short)
		printf(": %s\n", features[F_FILES].why);
	else
		printf("\n");
}

static void report_memlock(const struct memlock_trial *t, int n)
{
	int i, short_of = 0;

	printf("%-11s ", "ulimit -l");
	print_limit("soft", m.memlock.rlim_cur, 1);
	if (m.cap_ipc_lock) {
		printf(", but with CAP_IPC_LOCK step 07 registers /large without limit\n");
		return;
	}
	printf(", counted per user (a running server uses its share)\n");
	if (!n)
		return;
	for (i = 0; i < n; i++) {
		printf("%-11s step 07 with -l %zu pins %zu KiB and its rings: ", "", t[i].large,
		       t[i].need_kib);
		if (t[i].ret == 0) {
			printf("fits\n");
		} else if (t[i].ret == -ENOMEM) {
			printf("does not fit, the server pins per send instead\n");
			short_of = 1;
		} else {
			printf("%s\n", t[i].ret == 1 ? "not tried" : strerror(-t[i].ret));
		}
	}
	if (short_of)
		printf("%-11s Fix: ulimit -l unlimited (the hard limit needs root to raise), or a smaller -l\n", "");
}

/*
 * What each step needs, in the order a failure should be named (a ring
 * before its opcodes), and what it can do without.
 */
#define OPS_BASE F_OP_ACCEPT, F_OP_RECV, F_OP_SEND, F_OP_CLOSE, F_OP_TIMEOUT, \
	F_OP_SHUTDOWN
#define OPS_02 OPS_BASE, F_OP_LINK_TIMEOUT	/* bounds the lingering close */
#define NEEDS_06 F_SOCKET, F_RING, F_PROBE, OPS_BASE, F_OP_ASYNC_CANCEL, \
	F_OP_TIMEOUT_REMOVE, F_SQPOLL, F_FILES, F_BUF_RING, F_MSHOT_ACCEPT, \
	F_MSHOT_RECV, F_CANCEL_FD_FIXED

static const struct step {
	const char *name;
	enum feature_id needs[24];
	enum feature_id wants[4];
} steps[] = {
	{ "step01_blocking", { F_SOCKET }, { F_NONE } },
	{ "step02_io_uring_wait", { F_SOCKET, F_RING, F_PROBE, OPS_02 }, { F_COOP_TASKRUN } },
	{ "step03_linked_close", { F_SOCKET, F_RING, F_PROBE, OPS_02 }, { F_COOP_TASKRUN } },
	{ "step04_sqpoll", { F_SOCKET, F_RING, F_PROBE, OPS_02, F_SQPOLL }, { F_NONE } },
	{ "step05_peek_spin", { F_SOCKET, F_RING, F_PROBE, OPS_02, F_SQPOLL }, { F_NONE } },
	{ "step06_multishot_bufring", { NEEDS_06 }, { F_NONE } },
	{ "step07_send_zc", { NEEDS_06 }, { F_SEND_ZC, F_ZC_REPORT, F_FIXED_FD_INSTALL } },
	{ "epilogue_defer_taskrun", { F_SOCKET, F_RING, F_PROBE, OPS_BASE,
	  F_OP_ASYNC_CANCEL, F_OP_TIMEOUT_REMOVE, F_DEFER_TASKRUN, F_FILES,
	  F_BUF_RING, F_MSHOT_ACCEPT, F_MSHOT_RECV, F_CANCEL_FD_FIXED },
	  { F_SEND_ZC, F_ZC_REPORT, F_FIXED_FD_INSTALL } },
};

#define NR_STEPS	(int)(sizeof(steps) / sizeof(steps[0]))

/* One line; returns 1 when the step can run. */
static int report_step(const struct step *s, const char *extra_note)
{
	const struct feature *f;
	const char *sep = " (";
	int i;

	for (i = 0; s->needs[i] != F_NONE; i++) {
		f = &features[s->needs[i]];
		if (f->state == NO) {
			printf("%s: will not run: %s.", s->name, f->why);
			if (f->fix[0])
				printf(" Fix: %s", f->fix);
			printf("\n");
			return 0;
		}
	}
	/* Not tried only because something it builds on already failed. */
	for (i = 0; s->needs[i] != F_NONE; i++) {
		if (features[s->needs[i]].state != YES) {
			printf("%s: will not run: the doctor could not try all it needs\n", s->name);
			return 0;
		}
	}
	printf("%s: ready", s->name);
	for (i = 0; s->wants[i] != F_NONE; i++) {
		f = &features[s->wants[i]];
		/* Without SEND_ZC, its report flag does not matter. */
		if (s->wants[i] == F_ZC_REPORT && features[F_SEND_ZC].state != YES)
			continue;
		if (f->state == NO) {
			printf("%s%s", sep, f->why);
			sep = "; ";
		}
	}
	if (extra_note) {
		printf("%s%s", sep, extra_note);
		sep = "; ";
	}
	printf("%s\n", sep[0] == ';' ? ")" : "");
	return 1;
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s\n"
		"Tries what each workshop step needs on this machine, as this user, and\n"
		"prints one verdict per step. Exits 0 when every step can run, 1 otherwise.\n",
		prog);
}

int main(int argc, char **argv)
{
	struct memlock_trial memlock[2] = {
		{ .large = DEFAULT_LARGE_BYTES, .ret = 1 },
		{ .large = BIG_LARGE_BYTES, .ret = 1 },
	};
	struct io_uring ring, sq_ring;
	int listen_fd = -1, client = -1;
	int have_sq_ring = 0, have_files = 0, ready = 0, i;
	const char *zc_note = NULL;

	if (argc > 1) {
		usage(strcmp(argv[1], "-h") ? stderr : stdout, argv[0]);
		return strcmp(argv[1], "-h") ? 2 : 0;
	}
	/* Line by line: a rare message on stderr then lands where it belongs. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	read_facts();

	listen_fd = open_listener();
	if (listen_fd < 0)
		set_no(F_SOCKET, "sudo ip link set lo up",
		       "no TCP listener on 127.0.0.1: %s", strerror(-listen_fd));
	else
		set_yes(F_SOCKET);

	/*
	 * One ring at a time, as a server has: first as steps 02-03 make
	 * theirs, then as steps 04-07 do. Every trial of steps 06-07 runs
	 * on the second, as their requests do on theirs: the kernel's answers
	 * may depend on the ring's flags.
	 */
	if (try_ring(&ring) == 0) {
		probe_ops(&ring);
		io_uring_queue_exit(&ring);
		try_defer_taskrun();
		if (try_sqpoll(&sq_ring) == 0)
			have_sq_ring = 1;
	}
	if (have_sq_ring) {
		have_files = try_files(&sq_ring) == 0;
		try_buf_ring(&sq_ring);
		/* Before any request: the server registers /large before it serves. */
		for (i = 0; i < 2; i++)
			try_memlock(&sq_ring, &memlock[i]);
		if (listen_fd >= 0) {
			client = connect_to(listen_fd);
			if (client < 0)
				set_no(F_MSHOT_ACCEPT, "sudo ip link set lo up",
				       "no loopback connection to try it on: %s", strerror(-client));
		}
		if (client >= 0 && have_files && features[F_OP_ACCEPT].state == YES)
			try_multishot(&sq_ring, listen_fd, client);
		if (client >= 0 && features[F_SEND_ZC].state == YES)
			try_zc_report(&sq_ring, client);
		if (memlock[0].ret == -ENOMEM && features[F_SEND_ZC].state == YES)
			zc_note = "the /large body is pinned per send: it does not fit ulimit -l";
	}

	report_facts();
	report_nofile();
	report_memlock(memlock, have_sq_ring ? 2 : 0);
	report_tools();
	printf("\n");
	for (i = 0; i < NR_STEPS; i++)
		ready += report_step(&steps[i], steps[i].wants[0] == F_SEND_ZC ? zc_note : NULL);
	if (ready == NR_STEPS)
		printf("doctor: all %d steps ready\n", NR_STEPS);
	else
		printf("doctor: %d of %d steps ready: fix the lines above that say \"will not run\"\n",
		       ready, NR_STEPS);

	/* Tearing the rings down cancels the multishot requests still armed. */
	if (have_sq_ring)
		io_uring_queue_exit(&sq_ring);
	if (buf_ring)
		munmap(buf_ring, buf_ring_size);
	if (client >= 0)
		close(client);
	if (listen_fd >= 0)
		close(listen_fd);
	return ready == NR_STEPS ? 0 : 1;
}
