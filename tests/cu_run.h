/*
 * cu_run.h - the common end of every CUnit test program's main().
 */
#ifndef TESTS_CU_RUN_H
#define TESTS_CU_RUN_H

#include <CUnit/Basic.h>

/* Runs the registered suites verbosely, frees the registry, and returns the
 * process exit status: 0 only if every assertion of every test passed. */
static inline int cu_run_all(void)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_ErrorCode rc = CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return rc != CUE_SUCCESS || failures ? 1 : 0;
}

#endif
