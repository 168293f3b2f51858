// SPDX-License-Identifier: MIT
/*
 * doctor_trials.c - the doctor's trials (scripts/doctor.c) under SQPOLL:
 * each waits for its own completion, whatever io_uring_submit() counts.
 *
 * With SQPOLL, liburing's io_uring_submit() returns how many entries the
 * SQ thread has not taken yet: 0 when it took ours before the count was
 * read, more when it lags. A trial that wants exactly 1 fails at random,
 * and the doctor calls a ready machine "not ready" (about 1 run in 150 on
 * the development machine). One doctor run submits a handful of trials on
 * its SQPOLL ring; this runs TRIALS of them back to back, a NOP each,
 * through the doctor's own submit_and_wait(), and counts the submits that
 * did not return 1 (what the old check would have failed on).
 *
 *	make -C tests doctor_trials && tests/doctor_trials
 */
#define _GNU_SOURCE
#include <check.h>
#include <liburing.h>

static int submits_not_one;

/* The doctor's io_uring_submit(), counted. */
static int counted_submit(struct io_uring *ring)
{
	int ret = io_uring_submit(ring);

	if (ret != 1)
		submits_not_one++;
	return ret;
}

#define io_uring_submit counted_submit
#define main doctor_main
#include "../scripts/doctor.c"
#undef main
#undef io_uring_submit

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * How often the count is off depends on where the SQ thread runs: some
 * rings see it dozens of times in 20000 trials, some not at all. So trials
 * go on, on a new ring every TRIALS_PER_RING, until it has happened ENOUGH
 * times, or for at most TRIALS_MS.
 */
#define ENOUGH 20
#define TRIALS_MS 3000
#define TRIALS_PER_RING 5000

START_TEST(sqpoll_trials_wait_for_their_own_completion)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	unsigned int flags;
	int i, n = 0, rings = 0, ret, res, failed = 0, first_err = 0;
	long long end = now_ms() + TRIALS_MS;

	/* A new ring now and then: its SQ thread may land elsewhere. */
	while (submits_not_one < ENOUGH && now_ms() < end) {
		if (try_sqpoll(&ring)) {
			printf("doctor_trials: no SQPOLL ring here (%s): nothing to try\n",
			       features[F_SQPOLL].why);
			return;
		}
		rings++;
		for (i = 0; i < TRIALS_PER_RING && submits_not_one < ENOUGH; i++, n++) {
			sqe = next_sqe(&ring, 1000 + i);
			io_uring_prep_nop(sqe);
			ret = submit_and_wait(&ring, 1000 + i, &res, &flags);
			if ((ret < 0 || res != 0) && !failed++)
				first_err = ret < 0 ? ret : res;
		}
		io_uring_queue_exit(&ring);
	}
	printf("doctor_trials: %d NOP trials on %d SQPOLL rings: %d failed; io_uring_submit() returned other than 1 in %d of them%s\n",
	       n, rings, failed, submits_not_one,
	       submits_not_one ? "" : " (so this run could not tell)");
	ck_assert_msg(!failed, "%d of %d trials failed, the first with %s", failed, n,
		      strerror(-first_err));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("doctor");
	TCase *tc = tcase_create("trials");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, sqpoll_trials_wait_for_their_own_completion);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
