// test_writer.cc: lib/http1's response head writer: status line, header block, the cached
// Date, chunked framing and the server's own error answers. Each test names its spec rule.
#include "cmocka.hh"

#include "count_allocations.hh"

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core/exchange.hh"
#include "core/http.hh"
#include "http1/parser.hh"
#include "http1/writer.hh"

using namespace cwsgi;
using namespace cwsgi::http1;

namespace {

// The head with its Date line cut out (its value changes every second), and that value.
std::string without_date(std::string head, std::string *date = nullptr)
{
    size_t at = head.find("Date: ");
    if (at == std::string::npos) return head;
    size_t end = head.find("\r\n", at);
    if (date != nullptr) *date = head.substr(at + 6, end - at - 6);
    head.erase(at, end + 2 - at);
    return head;
}

void test_writer__status_line_and_fields(void **) // rule: H1-WRITE-1
{
    std::string out = "kept";
    core::Field fields[] = {{"Content-Type", "text/plain"}, {"X-A", "1"}};
    write_head(out, 1, 200, "", fields, false);
    std::string date;
    assert_string_equal(without_date(out, &date).c_str(),
                        "keptHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n");
    assert_int_equal(date.size(), 29);
    out.clear();
    write_head(out, 0, 404, "Gone Fishing", {}, false);
    assert_string_equal(without_date(out).c_str(), "HTTP/1.0 404 Gone Fishing\r\n\r\n");
    // The app's own Date wins: no second one.
    out.clear();
    core::Field dated[] = {{"date", "Sun, 06 Nov 1994 08:49:37 GMT"}};
    write_head(out, 1, 204, "", dated, false);
    assert_string_equal(out.c_str(), "HTTP/1.1 204 No Content\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    // What the writer writes, our parser's grammar reads back (field lines, CRLF).
    out.clear();
    write_head(out, 1, 999, "", fields, true);
    assert_true(out.rfind("HTTP/1.1 999 Unknown\r\n", 0) == 0);
    std::string as_request = "GET / HTTP/1.1\r\n" + out.substr(out.find("\r\n") + 2);
    HeadParser p{core::Limits{}};
    assert_true(p.feed(as_request) == Progress::done);
    assert_int_equal(p.fields().size(), 4);
}

void test_writer__response_head(void **) // rule: H1-WRITE-1, H1-WRITE-3
{
    core::Field fields[] = {{"Content-Length", "5"}};
    core::ResponseHead head;
    head.status = 201;
    head.reason = "Created";
    head.headers = fields;
    head.framing.framing = core::Framing::length;
    std::string out;
    write_head(out, 1, head);
    assert_string_equal(without_date(out).c_str(), "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n");
    head.headers = {};
    head.framing.framing = core::Framing::chunked;
    out.clear();
    write_head(out, 1, head);
    assert_string_equal(without_date(out).c_str(), "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n");
}

void test_writer__date_is_imf_fixdate_cached_per_second(void **) // rule: H1-WRITE-2
{
    time_t before = time(nullptr);
    std::string_view a = http_date();
    std::string first(a);
    time_t after = time(nullptr);
    // "Sun, 06 Nov 1994 08:49:37 GMT": parse it back and land between before and after.
    assert_int_equal(first.size(), 29);
    struct tm tm = {};
    assert_non_null(strptime(first.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm));
    time_t t = timegm(&tm);
    assert_true(t >= before && t <= after);
    // The same second gives the same bytes, at the same address (the cache).
    std::string_view b = http_date();
    if (time(nullptr) == t) {
        assert_true(b.data() == a.data());
        assert_true(std::string(b) == first);
    }
    // Another thread has its own cache.
    const char *other = nullptr;
    std::thread([&] { other = http_date().data(); }).join();
    assert_true(other != a.data());
}

void test_writer__chunks_and_trailers(void **) // rule: H1-WRITE-3
{
    std::string out;
    write_chunk_header(out, 1);
    write_chunk_header(out, 0x1a2b);
    assert_string_equal(out.c_str(), "1\r\n1a2b\r\n");
    assert_true(chunk_end() == "\r\n");
    out.clear();
    write_last_chunk(out, {});
    assert_string_equal(out.c_str(), "0\r\n\r\n");
    out.clear();
    std::vector<core::Header> trailers = {{"X-Sum", "abc"}, {"X-B", "1"}};
    write_last_chunk(out, trailers);
    assert_string_equal(out.c_str(), "0\r\nX-Sum: abc\r\nX-B: 1\r\n\r\n");
    // Our decoder reads back what the writer framed, trailers included.
    std::string body;
    write_chunk_header(body, 3);
    body += "abc";
    body += chunk_end();
    body += out;
    core::HeadCheck c;
    c.body = core::BodyKind::chunked;
    BodyDecoder d = BodyDecoder::for_check(c, core::Limits{});
    std::string got;
    std::string_view in = body, data;
    size_t used = 0;
    Progress p = Progress::more;
    for (int i = 0; i < 10 && p == Progress::more && !in.empty(); ++i) {
        p = d.decode(in, used, data);
        got += data;
        in.remove_prefix(used);
    }
    assert_true(p == Progress::done);
    assert_string_equal(got.c_str(), "abc");
    assert_int_equal(d.trailers().size(), 2);
}

void test_writer__error_answers(void **) // rule: H1-WRITE-4, REQ-REPLY-1
{
    std::string out;
    write_error(out, 1, 408);
    assert_string_equal(without_date(out).c_str(),
                        "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n");
    out.clear();
    write_error(out, 0, 400);
    assert_true(out.rfind("HTTP/1.0 400 Bad Request\r\n", 0) == 0);
    assert_true(out.size() > 16 && out.compare(out.size() - 16, 16, "400 Bad Request\n") == 0);
    // For HEAD: the same head, Content-Length included, and no body.
    out.clear();
    write_error(out, 1, 417, true);
    assert_string_equal(without_date(out).c_str(),
                        "HTTP/1.1 417 Expectation Failed\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 23\r\nConnection: close\r\n\r\n");
}

void test_writer__steady_state_allocates_nothing(void **) // rule: H1-WRITE-1, H1-WRITE-3
{
    // A connection reuses its output string: once it has room, writing a head, chunk headers
    // and the last chunk costs no heap allocation.
    core::Field fields[] = {{"Content-Type", "text/plain"}, {"X-Request-Id", "0123456789abcdef"}};
    std::string out;
    out.reserve(1024);
    http_date(); // the first call of a thread may set up its cache
    size_t before = g_allocations.load();
    for (int i = 0; i < 100; ++i) {
        out.clear();
        write_head(out, 1, 200, "", fields, true);
        write_chunk_header(out, 4096);
        write_last_chunk(out, {});
    }
    assert_int_equal(g_allocations.load(), before);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer__status_line_and_fields),
        cmocka_unit_test(test_writer__response_head),
        cmocka_unit_test(test_writer__date_is_imf_fixdate_cached_per_second),
        cmocka_unit_test(test_writer__chunks_and_trailers),
        cmocka_unit_test(test_writer__error_answers),
        cmocka_unit_test(test_writer__steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
