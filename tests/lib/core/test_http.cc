// test_http.cc: request-head validation, response-header rules and framing decisions
// (lib/core/http.cc). Each test names the spec rule it checks.
#include "cmocka.hh"

#include <cstring>
#include <string>
#include <vector>

#include "core/http.hh"

#include "cwsgi.h"
#include "cwsgi.hpp"

using namespace cwsgi::core;

namespace {

RequestHead head(std::string method, std::string target, std::vector<Header> headers, uint32_t minor = 1)
{
    // As an adapter builds it: copies in the head's arena, names lowercased by add_header.
    RequestHead h;
    h.method = h.keep(method);
    h.target = h.keep(target);
    h.http_minor = minor;
    for (const Header &f : headers) h.add_header(f.name, f.value);
    return h;
}

uint32_t status_of(const RequestHead &h, Limits l = Limits{}) { return validate_request_head(h, l).status; }

void test_http__valid_get(void **)
{
    HeadCheck c = validate_request_head(head("GET", "/a?b=c", {{"Host", "x"}}), Limits{});
    assert_int_equal(c.status, 0);
    assert_true(c.body == BodyKind::none);
    assert_true(c.keep_alive);
}

void test_http__method_must_be_uppercase_token(void **) // rule: REQ-LINE-1
{
    assert_int_equal(status_of(head("GE T", "/", {})), 400);
    assert_int_equal(status_of(head("GET:", "/", {})), 400);
    assert_int_equal(status_of(head("get", "/", {})), 400);
    assert_int_equal(status_of(head(std::string("G\0T", 3), "/", {})), 400);
    assert_int_equal(status_of(head("PURGE", "/", {})), 0);
}

void test_http__version(void **) // rule: REQ-LINE-2
{
    RequestHead h = head("GET", "/", {});
    h.http_major = 3;
    assert_int_equal(status_of(h), 505);
    h.http_major = 2;
    h.http_minor = 0;
    assert_int_equal(status_of(h), 0);
}

void test_http__request_line_limit(void **) // rule: LIMIT-1
{
    std::string target = "/" + std::string(4094, 'a');
    assert_int_equal(status_of(head("GET", target, {})), 414);
    // Exactly at the limit passes: "GET " + target + " HTTP/1.1" == 4094.
    assert_int_equal(status_of(head("GET", "/" + std::string(4094 - 4 - 9 - 1, 'a'), {})), 0);
}

void test_http__target_forms(void **) // rule: REQ-LINE-3
{
    assert_int_equal(status_of(head("OPTIONS", "*", {})), 0);
    assert_int_equal(status_of(head("GET", "*", {})), 400);
    assert_int_equal(status_of(head("GET", "http://example.com/x", {})), 0);
    assert_int_equal(status_of(head("GET", "http://", {})), 400);
    assert_int_equal(status_of(head("GET", "example.com:443", {})), 400);
    assert_int_equal(status_of(head("GET", "relative/path", {})), 400);
    assert_int_equal(status_of(head("CONNECT", "example.com:443", {})), 501);
    assert_int_equal(status_of(head("GET", "http://user:pass@example.com/", {})), 400);
    assert_int_equal(status_of(head("GET", "http://[::1]:8080/x", {})), 0);
}

void test_http__target_bytes(void **) // rule: REQ-LINE-4
{
    assert_int_equal(status_of(head("GET", "/a b", {})), 400);
    assert_int_equal(status_of(head("GET", "/a\x01", {})), 400);
    assert_int_equal(status_of(head("GET", "/caf\xc3\xa9", {})), 400);
}

void test_http__percent_escapes(void **) // rule: REQ-LINE-5
{
    assert_int_equal(status_of(head("GET", "/a%2Fb", {})), 0);
    assert_int_equal(status_of(head("GET", "/a%zz", {})), 400);
    assert_int_equal(status_of(head("GET", "/a%2", {})), 400);
    assert_int_equal(status_of(head("GET", "/a%00b", {})), 400);
    assert_int_equal(status_of(head("GET", "/ok?q=%zz", {})), 0); // the query is not decoded
    assert_string_equal(percent_decode("/a%2Fb%41").value().c_str(), "/a/bA");
}

void test_http__header_name_and_value(void **) // rule: REQ-HDR-1, REQ-HDR-2
{
    assert_int_equal(status_of(head("GET", "/", {{"Content-Length ", "0"}})), 400);
    assert_int_equal(status_of(head("GET", "/", {{"X(y)", "1"}})), 400);
    assert_int_equal(status_of(head("GET", "/", {{"X", "a\rb"}})), 400);
    assert_int_equal(status_of(head("GET", "/", {{"X", std::string("a\0b", 3)}})), 400);
    assert_int_equal(status_of(head("GET", "/", {{"X", "bell\x07"}})), 400);
    assert_int_equal(status_of(head("GET", "/", {{"X", "tab\tok"}})), 0);
}

void test_http__host(void **) // rule: REQ-HDR-3
{
    assert_int_equal(status_of(head("GET", "/", {{"Host", "a"}, {"host", "b"}})), 400);
    for (const char *bad : {"user@host", "host/path", "host:port", "[::1", "[zz]:80", "a b", "host:123456"}) {
        assert_int_equal(status_of(head("GET", "/", {{"Host", bad}})), 400);
    }
    for (const char *good : {"example.com", "example.com:8080", "[::1]:9000", "0.0.0.0=5000", "127.0.0.1"}) {
        assert_int_equal(status_of(head("GET", "/", {{"Host", good}})), 0);
    }
    // No Host at all on HTTP/1.1 is accepted (spec REQ-HDR-3 explains why).
    assert_int_equal(status_of(head("GET", "/", {})), 0);
}

void test_http__one_content_type(void **) // rule: REQ-HDR-5
{
    assert_int_equal(
        status_of(head("POST", "/", {{"Content-Type", "application/json"}, {"content-type", "text/html"}})), 400);
    assert_int_equal(status_of(head("POST", "/", {{"Content-Type", "text/plain"}, {"Content-Type", "text/plain"}})),
                     400);
    assert_int_equal(status_of(head("POST", "/", {{"Content-Type", "text/plain"}})), 0);
}

void test_http__h2_authority(void **) // rule: REQ-H2-1
{
    RequestHead h = head("GET", "/", {});
    h.http_major = 2;
    h.http_minor = 0;
    h.authority = "example.com:443";
    assert_int_equal(status_of(h), 0);
    h.authority = "evil@example.com";
    assert_int_equal(status_of(h), 400);
}

void test_http__h2_host_must_match_authority(void **) // rule: REQ-H2-1, ENV-HDR-1
{
    RequestHead h = head("GET", "/", {{"Host", "Example.com:443"}});
    h.http_major = 2;
    h.http_minor = 0;
    h.authority = "example.com:443";
    HeadCheck c = validate_request_head(h, Limits{});
    assert_int_equal(c.status, 0); // the same authority: accepted, the field is dropped later
    assert_true(c.server_name == "example.com");
    RequestHead bad = head("GET", "/", {{"Host", "other.example"}});
    bad.http_major = 2;
    bad.http_minor = 0;
    bad.authority = "example.com";
    c = validate_request_head(bad, Limits{});
    assert_int_equal(c.status, 400);
    assert_string_equal(c.rule, "REQ-H2-1");
}

void test_http__server_name_and_port(void **) // rule: ENV-KEYS-5
{
    // No authority at all: the local socket; a unix socket has no port, so SERVER_PORT is
    // the scheme's default and never empty.
    RequestHead h = head("GET", "/", {}, 0);
    h.is_unix = true;
    h.local_addr = "/run/app.sock";
    h.local_port = "";
    HeadCheck c = validate_request_head(h, Limits{});
    assert_int_equal(c.status, 0);
    assert_true(c.server_name == "/run/app.sock");
    assert_true(c.server_port == "80");
    h.is_tls = true;
    c = validate_request_head(h, Limits{});
    assert_true(c.server_port == "443");
    // A TCP socket keeps its own port.
    RequestHead tcp = head("GET", "/", {}, 0);
    tcp.local_addr = "127.0.0.1";
    tcp.local_port = "8000";
    c = validate_request_head(tcp, Limits{});
    assert_true(c.server_name == "127.0.0.1");
    assert_true(c.server_port == "8000");
    // The absolute-form authority wins over Host, split once, its scheme's default port.
    // The check's views point into the head: it must outlive them.
    RequestHead absolute = head("GET", "https://[::1]/x", {{"Host", "h.example:81"}});
    c = validate_request_head(absolute, Limits{});
    assert_true(c.server_name == "[::1]");
    assert_true(c.server_port == "443");
    assert_true(c.scheme == "https");
}

void test_http__expect(void **) // rule: REQ-HDR-4
{
    HeadCheck c =
        validate_request_head(head("POST", "/", {{"Expect", "100-continue"}, {"Content-Length", "3"}}), Limits{});
    assert_int_equal(c.status, 0);
    assert_true(c.expect_continue);
    c = validate_request_head(head("POST", "/", {{"Expect", "100-continue"}, {"Content-Length", "3"}}, 0), Limits{});
    assert_false(c.expect_continue); // HTTP/1.0 clients do not wait for 100
    assert_int_equal(status_of(head("GET", "/", {{"Expect", "something-else"}})), 417);
}

void test_http__content_length(void **) // rule: REQ-BODY-2
{
    for (const char *bad : {"-1", "+1", "0x10", "1 2", "", "bla", "1,1", "99999999999999999999"}) {
        assert_int_equal(status_of(head("POST", "/", {{"Content-Length", bad}})), 400);
    }
    assert_int_equal(status_of(head("POST", "/", {{"Content-Length", "3"}, {"Content-Length", "4"}})), 400);
    HeadCheck c = validate_request_head(head("POST", "/", {{"Content-Length", "12"}}), Limits{});
    assert_true(c.body == BodyKind::length);
    assert_int_equal(c.content_length, 12);
}

void test_http__transfer_encoding(void **) // rule: REQ-BODY-3, REQ-BODY-4, REQ-BODY-5, REQ-BODY-6
{
    HeadCheck c = validate_request_head(head("POST", "/", {{"Transfer-Encoding", "chunked"}}), Limits{});
    assert_true(c.body == BodyKind::chunked);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "chunked"}}, 0)), 400);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "gzip"}})),
                     400);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "chunked, chunked"}})), 400);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "gzip"}})), 400);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "br, chunked"}})), 501);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "gzip, chunked"}})), 0);
    assert_int_equal(status_of(head("POST", "/", {{"Transfer-Encoding", "identity, chunked"}})), 0);
    assert_int_equal(status_of(head("POST", "/", {{"Content-Length", "3"}, {"Transfer-Encoding", "chunked"}})), 400);
}

void test_http__field_limits(void **) // rule: LIMIT-2, LIMIT-3
{
    std::vector<Header> many(101, Header{"X", "1"});
    assert_int_equal(status_of(head("GET", "/", many)), 431);
    many.resize(100);
    assert_int_equal(status_of(head("GET", "/", many)), 0);
    assert_int_equal(status_of(head("GET", "/", {{"X", std::string(8190, 'a')}})), 431);
    Limits l;
    l.request_field_size = 16;
    assert_int_equal(status_of(head("GET", "/", {{"Accept", "*/*"}}), l), 0);
    assert_int_equal(status_of(head("GET", "/", {{"Accept", "text/html,*/*"}}), l), 431);
}

void test_http__body_limit(void **) // rule: LIMIT-4
{
    Limits l;
    l.request_body = 10;
    assert_int_equal(status_of(head("POST", "/", {{"Content-Length", "11"}}), l), 413);
    assert_int_equal(status_of(head("POST", "/", {{"Content-Length", "10"}}), l), 0);
}

void test_http__keep_alive(void **)
{
    assert_false(validate_request_head(head("GET", "/", {{"Connection", "close"}}), Limits{}).keep_alive);
    assert_false(validate_request_head(head("GET", "/", {}, 0), Limits{}).keep_alive);
    assert_true(validate_request_head(head("GET", "/", {{"Connection", "Keep-Alive"}}, 0), Limits{}).keep_alive);
    assert_true(validate_request_head(head("GET", "/", {{"Connection", "foo, keep-alive"}}), Limits{}).keep_alive);
}

void test_http__response_header_rules(void **) // rule: RESP-HDR-1, RESP-HDR-2, RESP-HDR-3
{
    assert_int_equal(check_response_header("Content-Type", "text/plain"), CWSGI_OK);
    assert_int_equal(check_response_header("X Bad", "v"), CWSGI_E_HEADER);
    assert_int_equal(check_response_header("", "v"), CWSGI_E_HEADER);
    assert_int_equal(check_response_header("X", "a\r\nInjected: 1"), CWSGI_E_HEADER);
    assert_int_equal(check_response_header("X", std::string_view("a\0", 2)), CWSGI_E_HEADER);
    for (const char *h :
         {"Connection", "keep-alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Status"}) {
        assert_int_equal(check_response_header(h, "x"), CWSGI_E_FORBIDDEN);
    }
}

void test_http__framing(
    void **) // rule: RESP-FRAME-1, RESP-FRAME-2, RESP-FRAME-3, RESP-FRAME-4, RESP-FRAME-5, RESP-NOBODY-2
{
    FramingInput in;
    in.app_content_length = 5;
    FramingDecision d = decide_framing(in);
    assert_true(d.framing == Framing::length);
    assert_int_equal(d.content_length, 5);

    in = FramingInput{};
    assert_true(decide_framing(in).framing == Framing::chunked);
    in.http_minor = 0;
    d = decide_framing(in);
    assert_true(d.framing == Framing::close);
    assert_false(d.keep_alive);
    in.http_major = 2;
    assert_true(decide_framing(in).framing == Framing::stream);

    in = FramingInput{};
    in.finished_without_body = true;
    d = decide_framing(in);
    assert_true(d.framing == Framing::length && d.send_content_length && d.content_length == 0);

    in = FramingInput{};
    in.head_request = true;
    in.app_content_length = 100;
    d = decide_framing(in);
    assert_true(d.framing == Framing::no_body);
    assert_true(d.send_content_length);

    for (uint32_t s : {204u, 304u, 101u}) {
        in = FramingInput{};
        in.status = s;
        assert_true(decide_framing(in).framing == Framing::no_body);
        assert_false(decide_framing(in).send_content_length);
    }
    in = FramingInput{};
    in.shutting_down = true;
    assert_false(decide_framing(in).keep_alive); // rule: LIFE-STOP-2
}

void test_http__error_response(void **)
{
    ErrorResponse e = make_error_response(431);
    assert_string_equal(e.reason.c_str(), "Request Header Fields Too Large");
    assert_string_equal(e.body.c_str(), "431 Request Header Fields Too Large\n");
    bool saw_close = false, saw_len = false;
    for (auto &h : e.headers) {
        saw_close |= h.name == "Connection" && h.value == "close";
        saw_len |= h.name == "Content-Length" && h.value == std::to_string(e.body.size());
    }
    assert_true(saw_close && saw_len);
}

void test_http__reason_phrases_are_one_table(void **)
{
    // The core (status lines, its own error answers) and the C++ layer (HttpError bodies) give
    // every status the same phrase, and every registered code has one.
    const uint32_t registered[] = {100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301,
                                   302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409,
                                   410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428,
                                   429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511};
    for (uint32_t s : registered) {
        const char *core = cwsgi::core::reason_phrase(s);
        assert_string_not_equal(core, "Unknown");
        assert_string_equal(std::string(cwsgi::reason_phrase(s)).c_str(), core);
        assert_string_equal(cwsgi_reason_phrase(s), core);
    }
    for (uint32_t s : {0u, 99u, 199u, 299u, 306u, 419u, 430u, 509u, 599u, 600u}) {
        assert_string_equal(cwsgi::core::reason_phrase(s), "Unknown");
        assert_string_equal(std::string(cwsgi::reason_phrase(s)).c_str(), "Unknown");
    }
    assert_string_equal(cwsgi::core::reason_phrase(431), "Request Header Fields Too Large");
    assert_string_equal(std::string(cwsgi::reason_phrase(431)).c_str(), "Request Header Fields Too Large");
    assert_string_equal(cwsgi::core::reason_phrase(413), "Content Too Large"); // RFC 9110, not 7231
    assert_string_equal(cwsgi::core::reason_phrase(422), "Unprocessable Content");
    assert_string_equal(cwsgi::core::reason_phrase(451), "Unavailable For Legal Reasons");
}

// copy_lower works a word at a time: every byte value, at every offset of names from 0 to 24
// bytes (the tail as an overlapping word), must come out as the byte-wise lowercase would.
void test_http__copy_lower_matches_bytewise(void **)
{
    for (size_t len = 0; len <= 24; ++len) {
        for (int b = 0; b < 256; ++b) {
            for (size_t at = 0; at < (len == 0 ? 1 : len); ++at) {
                char src[24], dst[26], want[24];
                static const char kPattern[] = "Content-TYPE_x-Y@[`{z\x7f"
                                               "\xc3"
                                               "A"; // letters, their neighbours, DEL, a high byte
                for (size_t i = 0; i < len; ++i) src[i] = kPattern[i % (sizeof kPattern - 1)];
                if (len > 0) src[at] = static_cast<char>(b);
                for (size_t i = 0; i < len; ++i) {
                    char c = src[i];
                    want[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
                }
                std::memset(dst, '#', sizeof dst);
                copy_lower(dst, std::string_view(src, len));
                assert_memory_equal(dst, want, len);
                assert_int_equal(dst[len], '#'); // nothing written past the name
            }
        }
    }
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http__valid_get),
        cmocka_unit_test(test_http__copy_lower_matches_bytewise),
        cmocka_unit_test(test_http__method_must_be_uppercase_token),
        cmocka_unit_test(test_http__version),
        cmocka_unit_test(test_http__request_line_limit),
        cmocka_unit_test(test_http__target_forms),
        cmocka_unit_test(test_http__target_bytes),
        cmocka_unit_test(test_http__percent_escapes),
        cmocka_unit_test(test_http__header_name_and_value),
        cmocka_unit_test(test_http__host),
        cmocka_unit_test(test_http__one_content_type),
        cmocka_unit_test(test_http__h2_authority),
        cmocka_unit_test(test_http__h2_host_must_match_authority),
        cmocka_unit_test(test_http__server_name_and_port),
        cmocka_unit_test(test_http__expect),
        cmocka_unit_test(test_http__content_length),
        cmocka_unit_test(test_http__transfer_encoding),
        cmocka_unit_test(test_http__field_limits),
        cmocka_unit_test(test_http__body_limit),
        cmocka_unit_test(test_http__keep_alive),
        cmocka_unit_test(test_http__response_header_rules),
        cmocka_unit_test(test_http__framing),
        cmocka_unit_test(test_http__error_response),
        cmocka_unit_test(test_http__reason_phrases_are_one_table),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
