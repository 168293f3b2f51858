// SPDX-License-Identifier: MIT
/*
 * steps.c - the table of per-step expectations driving test_steps.c.
 * To cover a new step, add its row here; nothing else changes. The last
 * row is not a numbered step: the epilogue, step 07 retuned for few cores.
 */
#include "steps.h"

static const char *const spin_through_pauses[] = { "-s", "100000", NULL };

const struct step steps[] = {
	{
		.name = "step01_blocking",
		.fault_nofile = 4,		/* stdin, stdout, stderr, listener */
		.syscall_budget = 4.5,		/* measured: 4.00 */
	},
	{
		.name = "step02_io_uring_wait",
		.concurrent = true,
		.syscall_budget = 4,		/* measured: 3.0 to 3.5 */
	},
	{
		.name = "step03_linked_close",
		.concurrent = true,
		.syscall_budget = 3,		/* measured: 2.0 to 2.5 */
	},
	{
		.name = "step04_sqpoll",
		.concurrent = true,
		.sq_poll = true,
		/*
		 * measured: 2.1 to 2.35 on a quiet machine, up to 3.0 with
		 * other loads running: like step03, a client sending one
		 * request at a time leaves a wait per completion
		 */
		.syscall_budget = 3,
	},
	{
		.name = "step05_peek_spin",
		.concurrent = true,
		.takes_spin = true,
		.idle_cpu = true,
		.sq_poll = true,
		/* zero, with room for waking the SQ thread once or twice */
		.syscall_budget = 0.01,
		.budget_args = spin_through_pauses,
	},
	{
		.name = "step06_multishot_bufring",
		.keep_alive = true,
		.concurrent = true,
		.takes_spin = true,
		.idle_cpu = true,
		.sq_poll = true,
		.syscall_budget = 0.01,
		.budget_args = spin_through_pauses,
	},
	{
		.name = "step07_send_zc",
		.keep_alive = true,
		.zero_copy = true,
		.concurrent = true,
		.takes_spin = true,
		.idle_cpu = true,
		.sq_poll = true,
		.syscall_budget = 0.01,
		.budget_args = spin_through_pauses,
	},
	{
		.name = "epilogue_defer_taskrun",
		.keep_alive = true,
		.zero_copy = true,
		.concurrent = true,
		.idle_cpu = true,
		/*
		 * measured: 2.00, all io_uring_enter: one client, one request
		 * at a time, is no batch. One call waits for the request; the
		 * next submits the send, which completes at once, and returns
		 * with its completion instead of waiting on.
		 */
		.syscall_budget = 2.5,
		/* measured: 0.06 to 0.09 (40 connections, under strace) */
		.load_budget = 0.3,
	},
};

const size_t n_steps = sizeof(steps) / sizeof(steps[0]);
