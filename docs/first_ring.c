/* SPDX-License-Identifier: MIT */
/*
 * first_ring.c - the smallest io_uring program worth reading: two requests
 * in one submission, a 10 ms timeout and a no-op, and their completions,
 * which come back in the other order. TUTORIAL.md, "Fundamentals", walks
 * through it.
 *
 *	cc -o first_ring docs/first_ring.c $(pkg-config --cflags --libs liburing)
 *	./first_ring
 */
#include <stdio.h>
#include <string.h>
#include <liburing.h>

int main(void)
{
	struct __kernel_timespec ts = { .tv_nsec = 10 * 1000000 };
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int i, ret;

	ret = io_uring_queue_init(8, &ring, 0);		/* io_uring_setup() + mmap() */
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	sqe = io_uring_get_sqe(&ring);			/* first SQE: a timeout */
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	io_uring_sqe_set_data64(sqe, 1);
	sqe = io_uring_get_sqe(&ring);			/* second SQE: a no-op */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 2);
	ret = io_uring_submit(&ring);			/* one io_uring_enter() for both */
	printf("submitted %d requests\n", ret);
	for (i = 0; i < 2; i++) {
		ret = io_uring_wait_cqe(&ring, &cqe);	/* sleeps only if none is there */
		if (ret < 0) {
			fprintf(stderr, "io_uring_wait_cqe: %s\n", strerror(-ret));
			break;
		}
		printf("completion: user_data %llu, res %d (%s)\n",
		       (unsigned long long)cqe->user_data, cqe->res,
		       cqe->res < 0 ? strerror(-cqe->res) : "ok");
		io_uring_cqe_seen(&ring, cqe);		/* hand the CQ entry back */
	}
	io_uring_queue_exit(&ring);
	return 0;
}
