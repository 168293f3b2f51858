/* SPDX-License-Identifier: MIT */
/*
 * test_keepalive.h - the keep-alive suites of test_keepalive.c, one per
 * row of steps[] with keep_alive set; main() in test_steps.c adds them.
 */
#ifndef TESTS_TEST_KEEPALIVE_H
#define TESTS_TEST_KEEPALIVE_H

#include <check.h>

/*
 * The suite "<step name>/keepalive" for steps[@idx], whose server is
 * @repo_root/<step name>/server.
 */
Suite *keepalive_suite(int idx, const char *repo_root);

#endif /* TESTS_TEST_KEEPALIVE_H */
