/* SPDX-License-Identifier: MIT */
/*
 * test_close.h - the closing suites of test_close.c, one per row of
 * steps[]; main() in test_steps.c adds them.
 */
#ifndef TESTS_TEST_CLOSE_H
#define TESTS_TEST_CLOSE_H

#include <check.h>

/*
 * The suite "<step name>/close" for steps[@idx], whose server is
 * @repo_root/<step name>/server.
 */
Suite *close_suite(int idx, const char *repo_root);

#endif /* TESTS_TEST_CLOSE_H */
