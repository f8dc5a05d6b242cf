// test_log.cc: the access-log format (Apache combined, LOG-ACCESS-1) and the error log's
// one-line rule (LOG-ERR-2).
#include "cmocka.hh"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/log.hh"

#include "cwsgi.h"

using namespace cwsgi::core;

namespace {

void test_log__access_combined(void **) // rule: LOG-ACCESS-1
{
    AccessRecord r;
    r.remote_addr = "127.0.0.1";
    r.method = "GET";
    r.target = "/a?b=1";
    r.protocol = "HTTP/1.1";
    r.status = 200;
    r.body_bytes = 14;
    r.referer = "http://ref/";
    r.user_agent = "curl/7.88.1";
    std::string line = AccessLog::format(r, 1764262800); // 2025-11-27 17:00:00 UTC
    assert_string_equal(
        line.c_str(),
        "127.0.0.1 - - [27/Nov/2025:17:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 14 \"http://ref/\" \"curl/7.88.1\"");
}

void test_log__access_escapes_and_dashes(void **) // rule: LOG-ACCESS-1
{
    AccessRecord r;
    r.method = "GET";
    r.target = "/\"quoted\"\n";
    r.protocol = "HTTP/1.0";
    r.status = 404;
    std::string line = AccessLog::format(r, 0);
    assert_string_equal(line.c_str(),
                        "- - - [01/Jan/1970:00:00:00 +0000] \"GET /\\\"quoted\\\"\\x0a HTTP/1.0\" 404 - \"-\" \"-\"");
}

void test_log__error_log_one_line(void **) // rule: LOG-ERR-1, LOG-ERR-2
{
    char path[] = "/tmp/cwsgi-log-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    {
        Logger log;
        std::string err;
        assert_true(log.open(path, err));
        log.set_level(CWSGI_LOG_INFO);
        log.write(CWSGI_LOG_ERROR, "first\nInjected: line");
        log.write(CWSGI_LOG_DEBUG, "dropped below the level");
        log.info("second");
    }
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    unlink(path);
    std::string s = ss.str();
    assert_int_equal(std::count(s.begin(), s.end(), '\n'), 2);
    assert_non_null(std::strstr(s.c_str(), "[ERROR] first\\x0aInjected: line\n"));
    assert_non_null(std::strstr(s.c_str(), "[INFO] second\n"));
    assert_null(std::strstr(s.c_str(), "dropped"));
}

void test_log__open_failure(void **)
{
    Logger log;
    std::string err;
    assert_false(log.open("/nonexistent-dir/x.log", err));
    assert_non_null(std::strstr(err.c_str(), "cannot open log file"));
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log__access_combined),
        cmocka_unit_test(test_log__access_escapes_and_dashes),
        cmocka_unit_test(test_log__error_log_one_line),
        cmocka_unit_test(test_log__open_failure),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
