/*
 * test_header.c: cwsgi.h compiles alone as pedantic C99 (this file includes nothing else of
 * the project), and its status-code helpers are complete (ABI-ERR-1, ABI-ERR-2).
 */
#include "cwsgi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const int32_t all_codes[] = {
#define CODE(name, value, msg) value,
    CWSGI_STATUS_MAP(CODE)
#undef CODE
};

static void test_header__every_code_has_a_message_and_name(void **state)
{
    size_t i, j;
    (void)state;
    for (i = 0; i < sizeof all_codes / sizeof all_codes[0]; ++i) {
        assert_string_not_equal(cwsgi_strerror(all_codes[i]), "unknown status code");
        assert_string_not_equal(cwsgi_err_name(all_codes[i]), "CWSGI_UNKNOWN");
        for (j = 0; j < i; ++j) {
            assert_int_not_equal(all_codes[i], all_codes[j]); /* values never repeat */
        }
    }
    assert_string_equal(cwsgi_strerror(12345), "unknown status code");
    assert_string_equal(cwsgi_err_name(CWSGI_E_LENGTH), "CWSGI_E_LENGTH");
    assert_int_equal(CWSGI_OK, 0);
    assert_true(CWSGI_DROPPED > 0);
}

static void test_header__errors_are_negative(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof all_codes / sizeof all_codes[0]; ++i) {
        const char *name = cwsgi_err_name(all_codes[i]);
        if (strncmp(name, "CWSGI_E_", 8) == 0) {
            assert_true(all_codes[i] < 0);
        } else {
            assert_true(all_codes[i] >= 0);
        }
    }
}

static void test_header__api_has(void **state)
{
    cwsgi_server_api api;
    (void)state;
    memset(&api, 0, sizeof api);
    api.struct_size = (uint32_t)offsetof(cwsgi_server_api, write);
    assert_true(CWSGI_API_HAS(&api, read));
    assert_false(CWSGI_API_HAS(&api, write));
    api.struct_size = (uint32_t)sizeof api;
    assert_true(CWSGI_API_HAS(&api, get_extension));
    assert_false(CWSGI_API_HAS((const cwsgi_server_api *)NULL, read));
}

static void test_header__struct_size_first(void **state)
{
    /* ABI-STRUCT-1: every extensible struct starts with its size. */
    (void)state;
    assert_int_equal(offsetof(cwsgi_server_api, struct_size), 0);
    assert_int_equal(offsetof(cwsgi_app_desc, struct_size), 0);
    assert_int_equal(offsetof(cwsgi_request_info, struct_size), 0);
    assert_int_equal(offsetof(cwsgi_server_info, struct_size), 0);
    assert_int_equal(offsetof(cwsgi_ext_request_trailers, struct_size), 0);
    assert_int_equal(CWSGI_VERSION_HEX, (CWSGI_VERSION_MAJOR << 16) | (CWSGI_VERSION_MINOR << 8) | CWSGI_VERSION_PATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header__every_code_has_a_message_and_name),
        cmocka_unit_test(test_header__errors_are_negative),
        cmocka_unit_test(test_header__api_has),
        cmocka_unit_test(test_header__struct_size_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
