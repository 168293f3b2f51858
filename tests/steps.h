/* SPDX-License-Identifier: MIT */
/*
 * steps.h - what the tests expect of each step's server.  One row of
 * steps[] in steps.c per step directory; test_steps.c builds one Check
 * suite per row, so a new step is a new row, not new tests.
 */
#ifndef TESTS_STEPS_H
#define TESTS_STEPS_H

#include <stdbool.h>
#include <stddef.h>

struct step {
	/* Directory under the repository root holding "server"; suite name. */
	const char *name;
	/*
	 * HTTP/1.1 keep-alive; otherwise the server closes after each response.
	 * A keep-alive step also gets the suite of test_keepalive.c, so it
	 * takes -c CONNS, -B BUFFERS and -t SECONDS as step06 defines them,
	 * and prints step06's line "ring: N connections, N requests; ..."
	 * at exit.
	 */
	bool keep_alive;
	/*
	 * Sends large bodies with IORING_OP_SEND_ZC and prints "zero-copy
	 * sends: N without a copy, M copied by the kernel" at exit (step07).
	 */
	bool zero_copy;
	/* Serves many connections at once (step01 serves one at a time). */
	bool concurrent;
	/* Takes "-s MICROSECONDS" (spin budget); rejects it otherwise. */
	bool takes_spin;
	/* Must use under IDLE_CPU_LIMIT_PCT of a core when idle. */
	bool idle_cpu;
	/*
	 * Has a kernel thread poll the SQ (IORING_SETUP_SQPOLL): each time
	 * the server wakes it, it polls on for 100 ms. CPU figures taken
	 * while anything wakes the server are compared with what the same
	 * wake-ups cost it anyway, not with a flat limit (test_faults.c).
	 */
	bool sq_poll;
	/*
	 * RLIMIT_NOFILE for the exhaustion test of test_faults.c; 0 for the
	 * default there (32), which held clients exhaust. A server that holds
	 * one connection at a time never needs more than one fd beyond stdio
	 * and its listener, so clients cannot exhaust it: its row names the
	 * limit at which every accept fails, and the test lifts the limit,
	 * instead of letting clients go, to see it recover.
	 */
	unsigned int fault_nofile;
	/*
	 * Most syscalls per request allowed, measured with strace over
	 * sequential requests: a new connection per request for closing
	 * steps, one kept-alive connection for keep-alive steps.
	 */
	double syscall_budget;
	/*
	 * Options for that measurement, or NULL for none. The spinning steps
	 * get a spin budget that outlasts the client's pauses: on two cores
	 * our two spinning threads can starve the client for more than the
	 * default 1 ms, and the server then sleeps, one syscall each time.
	 * The test prints the default's figure too, for information.
	 */
	const char *const *budget_args;
	/*
	 * Most syscalls per request allowed under a closed-loop load (many
	 * kept-alive connections, each sending its next request as soon as
	 * its answer is in), or 0 for no such check. For a server that
	 * sleeps in the kernel between batches instead of spinning (the
	 * epilogue): it also gets the idle CPU check with idle kept-alive
	 * connections open.
	 */
	double load_budget;
	/*
	 * Exact response to "GET /" sent with "Connection: close"; NULL means
	 * the canonical response every step up to step05 sends.
	 */
	const char *root_response;
};

#define IDLE_CPU_LIMIT_PCT 5.0

extern const struct step steps[];
extern const size_t n_steps;

#endif /* TESTS_STEPS_H */
