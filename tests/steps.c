// SPDX-License-Identifier: MIT
/*
 * steps.c - the table of per-step expectations driving test_steps.c.
 * To cover a new step, add its row here; nothing else changes.
 */
#include "steps.h"

const struct step steps[] = {
	{
		.name = "step01_blocking",
		.syscall_budget = 5,
	},
	{
		.name = "step02_io_uring_wait",
		.concurrent = true,
		.syscall_budget = 5,
	},
	{
		.name = "step03_linked_close",
		.concurrent = true,
		.syscall_budget = 4,
	},
	{
		.name = "step04_sqpoll",
		.concurrent = true,
		.syscall_budget = 2,
	},
	{
		.name = "step05_peek_spin",
		.concurrent = true,
		.takes_spin = true,
		.idle_cpu = true,
		/* "zero", with room for a stray wakeup or two in 200 requests */
		.syscall_budget = 0.05,
	},
	/*
	 * The keep-alive steps, once their directories exist (budgets to be
	 * set after a first measurement):
	 *
	 * {
	 *	.name = "step06_multishot_bufring",
	 *	.keep_alive = true,
	 *	.concurrent = true,
	 *	.takes_spin = true,
	 *	.idle_cpu = true,
	 *	.syscall_budget = 0.05,
	 * },
	 * {
	 *	.name = "step07_send_zc",
	 *	...same fields...
	 * },
	 */
};

const size_t n_steps = sizeof(steps) / sizeof(steps[0]);
