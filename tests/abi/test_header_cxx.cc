// test_header_cxx.cc: cwsgi.h compiles alone as pedantic C++20 with the same layout the C
// compiler sees (ABI-TYPE-1), and its helpers are usable in constant-free C++ code.
#include "cwsgi.h"

#include "cmocka.hh"

#include <cstring>
#include <type_traits>

static_assert(std::is_standard_layout_v<cwsgi_server_api>, "the table is a plain C struct");
static_assert(std::is_trivially_copyable_v<cwsgi_app_desc>, "descriptors are plain C data");
static_assert(sizeof(cwsgi_str) == 2 * sizeof(void *), "(ptr, len)");

namespace {

void test_header_cxx__strerror(void **)
{
    assert_string_equal(cwsgi_strerror(CWSGI_E_COMMITTED), "response already committed: headers are on the wire");
    assert_string_equal(cwsgi_err_name(CWSGI_E_DISCONNECTED), "CWSGI_E_DISCONNECTED");
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_header_cxx__strerror)};
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
