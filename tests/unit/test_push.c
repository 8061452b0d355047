/*
 * test_push.c - retry policy of the mail push workers.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "push.h"

static void
test_backoff_grows_and_caps(void **state)
{
    (void)state;
    /* rnd 0.5 = no jitter: first * factor^(n-1), capped. */
    assert_int_equal(push_backoff_ms(1, 60, 2.0, 3600, 0.5), 60000);
    assert_int_equal(push_backoff_ms(2, 60, 2.0, 3600, 0.5), 120000);
    assert_int_equal(push_backoff_ms(3, 60, 2.0, 3600, 0.5), 240000);
    assert_int_equal(push_backoff_ms(6, 60, 2.0, 3600, 0.5), 1920000);
    assert_int_equal(push_backoff_ms(7, 60, 2.0, 3600, 0.5), 3600000);
    assert_int_equal(push_backoff_ms(40, 60, 2.0, 3600, 0.5), 3600000);
    assert_int_equal(push_backoff_ms(3, 10, 1.5, 3600, 0.5), 22500);
    assert_int_equal(push_backoff_ms(1000, 1, 10.0, 604800, 0.5), 604800000);
}

static void
test_backoff_jitter_bounds(void **state)
{
    (void)state;
    /* +-10% around the nominal delay, never outside it. */
    assert_int_equal(push_backoff_ms(1, 100, 2.0, 3600, 0.0), 90000);
    assert_true(push_backoff_ms(1, 100, 2.0, 3600, 0.999999) <= 110000);
    assert_true(push_backoff_ms(1, 100, 2.0, 3600, 0.999999) > 109990);
    assert_int_equal(push_backoff_ms(30, 100, 2.0, 1000, 0.0), 900000);
}

static void
test_backoff_first_attempt_numbers(void **state)
{
    (void)state;
    /* attempts < 1 are treated as the first attempt. */
    assert_int_equal(push_backoff_ms(0, 5, 3.0, 3600, 0.5), 5000);
    assert_int_equal(push_backoff_ms(-3, 5, 3.0, 3600, 0.5), 5000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_backoff_first_attempt_numbers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
