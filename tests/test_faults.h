/* SPDX-License-Identifier: MIT */
/*
 * test_faults.h - the fault suites of test_faults.c, one per row of
 * steps[]; main() in test_steps.c adds them.
 */
#ifndef TESTS_TEST_FAULTS_H
#define TESTS_TEST_FAULTS_H

#include <check.h>

/*
 * The suite "<step name>/faults" for steps[@idx], whose server is
 * @repo_root/<step name>/server.
 */
Suite *faults_suite(int idx, const char *repo_root);

#endif /* TESTS_TEST_FAULTS_H */
