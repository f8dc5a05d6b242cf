// test_parser.cc: lib/http1's request head parser and body decoder, rule by rule. Every case
// runs twice, the input whole and one byte at a time (in a buffer that moves at every call),
// and both runs must agree on everything; each test names the spec rule it checks.
#include "cmocka.hh"

#include "count_allocations.hh"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "http1_driver.hh"

using namespace cwsgi;
using namespace cwsgi::http1;
using cwsgi::http1::testing::drive;
using cwsgi::http1::testing::every_byte;
using cwsgi::http1::testing::Parsed;
using namespace std::string_literals; // "...\0..."s keeps the NUL

namespace {

// Parses `input` whole and byte by byte, checks that both agree and that no invariant broke,
// and returns the requests found.
std::vector<Parsed> parse(std::string_view input, const core::Limits &limits = core::Limits{})
{
    testing::violations().clear();
    std::vector<Parsed> whole = drive(input, {}, limits);
    std::vector<Parsed> bytes = drive(input, every_byte(input.size()), limits);
    // Split in two at every third offset as well: a head cut anywhere resumes the same way.
    for (size_t cut = 1; cut < input.size(); cut += 3) {
        if (drive(input, {cut}, limits) != whole) {
            print_error("split at %zu differs: %s\n", cut, std::string(input).c_str());
            fail();
        }
    }
    if (!testing::violations().empty()) {
        print_error("invariant: %s\n", testing::violations().front().c_str());
        fail();
    }
    assert_true(whole == bytes);
    assert_false(whole.empty());
    return whole;
}

Parsed one(std::string_view input, const core::Limits &limits = core::Limits{}) { return parse(input, limits).front(); }

// The input is refused by the parser with `status` under `rule`.
void refused(std::string_view input, uint32_t status, const char *rule, const core::Limits &limits = core::Limits{})
{
    Parsed p = one(input, limits);
    if (p.head != Progress::error || p.error.status != status || std::string_view(p.error.rule) != rule) {
        print_error("input %s: head %d status %u rule %s (want %u %s)\n", std::string(input).c_str(), int(p.head),
                    p.error.status, p.error.rule, status, rule);
        fail();
    }
}

// The head parses and the core accepts it.
Parsed accepted(std::string_view input, const core::Limits &limits = core::Limits{})
{
    Parsed p = one(input, limits);
    if (p.head != Progress::done || p.check_status != 0) {
        print_error("input %s: head %d status %u rule %s check %u\n", std::string(input).c_str(), int(p.head),
                    p.error.status, p.error.rule, p.check_status);
        fail();
    }
    return p;
}

// The body of an accepted head is refused by the decoder.
void body_refused(std::string_view input, uint32_t status, const char *rule,
                  const core::Limits &limits = core::Limits{})
{
    Parsed p = one(input, limits);
    assert_int_equal(int(p.head), int(Progress::done));
    assert_int_equal(p.check_status, 0);
    if (p.body != Progress::error || p.error.status != status || std::string_view(p.error.rule) != rule) {
        print_error("input %s: body %d status %u rule %s (want %u %s)\n", std::string(input).c_str(), int(p.body),
                    p.error.status, p.error.rule, status, rule);
        fail();
    }
}

const std::string kChunkedHead = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

void test_parser__simple_get(void **)
{
    Parsed p = accepted("GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-A:  v  w \t\r\n\r\n");
    assert_string_equal(p.method.c_str(), "GET");
    assert_string_equal(p.target.c_str(), "/a?b");
    assert_int_equal(p.major, 1);
    assert_int_equal(p.minor, 1);
    assert_int_equal(p.fields.size(), 2);
    assert_string_equal(p.fields[0].name.c_str(), "Host");  // as sent, not lowercased
    assert_string_equal(p.fields[1].value.c_str(), "v  w"); // OWS trimmed, inner kept
    assert_true(p.body == Progress::done);
    assert_true(p.data.empty());
}

void test_parser__request_line_single_spaces(void **) // rule: H1-LINE-1
{
    accepted("GET / HTTP/1.0\r\n\r\n");
    refused("GET  / HTTP/1.1\r\n\r\n", 400, "H1-LINE-1");
    refused(" GET / HTTP/1.1\r\n\r\n", 400, "H1-LINE-1");
    refused("GET\r\n\r\n", 400, "H1-LINE-1");
    refused("GET /\r\n\r\n", 400, "H1-LINE-1");
    refused("GET / HTTP/1.1 \r\n\r\n", 400, "H1-LINE-2");
    refused("GET /  HTTP/1.1\r\n\r\n", 400, "H1-LINE-2");
    refused("GET\t/ HTTP/1.1\r\n\r\n", 400, "H1-LINE-1");
    // What the method and target hold is the core's to judge (REQ-LINE-1, REQ-LINE-4).
    Parsed p = one("get / HTTP/1.1\r\n\r\n");
    assert_true(p.head == Progress::done);
    assert_int_equal(p.check_status, 400);
    p = one("GET /a\tb HTTP/1.1\r\n\r\n");
    assert_true(p.head == Progress::done);
    assert_int_equal(p.check_status, 400);
}

void test_parser__version_syntax(void **) // rule: H1-LINE-2, REQ-LINE-2
{
    accepted("GET / HTTP/1.1\r\n\r\n");
    Parsed p = accepted("GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(p.minor, 0);
    assert_false(p.keep_alive);
    for (const char *v : {"HTTP/1", "HTTP/1.", "HTTP/11", "HTTP/1.10", "HTTP/0.99", "http/1.1", "HTTP/a.1", "HTTP 1.1",
                          "FTP/1.1", "HTTP/1.1x", "HTTP/111"}) {
        refused(std::string("GET / ") + v + "\r\n\r\n", 400, "H1-LINE-2");
    }
    for (const char *v : {"HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/1.2", "HTTP/9.9"}) {
        refused(std::string("GET / ") + v + "\r\n\r\n", 505, "REQ-LINE-2");
    }
}

void test_parser__crlf_only(void **) // rule: H1-LINE-3
{
    refused("GET / HTTP/1.1\n\n", 400, "H1-LINE-3");
    refused("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "H1-LINE-3");
    refused("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "H1-LINE-3");
    refused("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "H1-LINE-3");
    refused("GET /\r HTTP/1.1\r\n\r\n", 400, "H1-LINE-3");
    refused("GET / HTTP/1.1\r\r\n\r\n", 400, "H1-LINE-3");
    refused("\nGET / HTTP/1.1\r\n\r\n", 400, "H1-LINE-3");
    body_refused(kChunkedHead + "1\n", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "1\r\na\n", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "0\r\nX: y\n\r\n", 400, "H1-LINE-3");
    body_refused(kChunkedHead + "0\r\n\n", 400, "H1-LINE-3");
    body_refused(kChunkedHead + "0\r\nX: a\rb\r\n\r\n", 400, "H1-LINE-3");
}

void test_parser__leading_empty_lines(void **) // rule: H1-LINE-4
{
    Parsed p = accepted("\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert_int_equal(p.head_size, 4 + 18);
    std::string eight, nine;
    for (int i = 0; i < 8; ++i) eight += "\r\n";
    nine = eight + "\r\n";
    accepted(eight + "GET / HTTP/1.1\r\n\r\n");
    refused(nine + "GET / HTTP/1.1\r\n\r\n", 400, "H1-LINE-4");
}

void test_parser__field_names(void **) // rule: H1-FIELD-1
{
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\nA(b): c\r\n\r\n", 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\nA\0b: c\r\n\r\n"s, 400, "H1-FIELD-1");
    refused("GET / HTTP/1.1\r\nX-\xc3\x9f: c\r\n\r\n", 400, "H1-FIELD-1");
    Parsed p = accepted("GET / HTTP/1.1\r\nX-!#$%&'*+-.^_`|~09az: v\r\nE:\r\n\r\n");
    assert_int_equal(p.fields.size(), 2);
    assert_string_equal(p.fields[1].value.c_str(), "");
}

void test_parser__field_values(void **) // rule: H1-FIELD-2
{
    refused("GET / HTTP/1.1\r\nX: a\x07z\r\n\r\n", 400, "H1-FIELD-2");
    refused("GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 400, "H1-FIELD-2");
    refused("GET / HTTP/1.1\r\nX: a\0z\r\n\r\n"s, 400, "H1-FIELD-2");
    refused("GET / HTTP/1.1\r\nX: a\x1bz\r\n\r\n", 400, "H1-FIELD-2");
    // HTAB inside and obs-text are kept as sent.
    Parsed p = accepted("GET / HTTP/1.1\r\nX: a\tb \xc3\x9f\r\n\r\n");
    assert_string_equal(p.fields[0].value.c_str(), "a\tb \xc3\x9f");
}

void test_parser__obs_fold(void **) // rule: H1-FIELD-3
{
    refused("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "H1-FIELD-3");
    refused("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400, "H1-FIELD-3");
    // Whitespace between the request line and the first field (RFC 9112 section 2.2).
    refused("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "H1-FIELD-3");
}

void test_parser__limits_while_reading(void **) // rule: H1-LIMIT-1, LIMIT-1, LIMIT-2, LIMIT-3
{
    core::Limits l;
    l.request_line = 20;
    l.request_fields = 2;
    l.request_field_size = 12;
    // "GET /123456 HTTP/1.1" is 20 bytes: at the limit; one more is over.
    accepted("GET /123456 HTTP/1.1\r\n\r\n", l);
    refused("GET /1234567 HTTP/1.1\r\n\r\n", 414, "LIMIT-1", l);
    // Refused before the line ends: the client never sends LF.
    refused("GET /1234567890123456789", 414, "LIMIT-1", l);
    // "X: 12345678" with CRLF is 13 > 12; "X: 1234567" is 12.
    accepted("GET / HTTP/1.1\r\nX: 1234567\r\n\r\n", l);
    refused("GET / HTTP/1.1\r\nX: 12345678\r\n\r\n", 431, "LIMIT-3", l);
    refused("GET / HTTP/1.1\r\nX: 123456789012", 431, "LIMIT-3", l);
    accepted("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", l);
    refused("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, "LIMIT-2", l);
    // The default limits, as gunicorn's.
    refused("GET /" + std::string(4100, 'a') + " HTTP/1.1\r\n\r\n", 414, "LIMIT-1");
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    refused(many + "\r\n", 431, "LIMIT-2");
    refused("GET / HTTP/1.1\r\nX: " + std::string(8190, 'v') + "\r\n\r\n", 431, "LIMIT-3");
    // A limit of 0 is none (gunicorn's meaning).
    core::Limits none;
    none.request_line = 0;
    none.request_field_size = 0;
    accepted("GET /" + std::string(5000, 'a') + " HTTP/1.1\r\nX: " + std::string(9000, 'v') + "\r\n\r\n", none);
}

void test_parser__incremental_costs_linear_time(void **) // rule: H1-INCR-1
{
    // A head of 100 fields of 8 KB fed one byte at a time: the parser looks at each byte a
    // bounded number of times, so the work stays linear (a quadratic parser would make ~4e10
    // byte visits here and not finish in the test's time).
    std::string head = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i) head += "X-" + std::to_string(i) + ": " + std::string(8000, 'v') + "\r\n";
    head += "\r\n";
    HeadParser p{core::Limits{}};
    Progress r = Progress::more;
    for (size_t n = 1; n <= head.size() && r == Progress::more; ++n) r = p.feed(std::string_view(head.data(), n));
    assert_true(r == Progress::done);
    assert_int_equal(p.head_size(), head.size());
    assert_int_equal(p.fields().size(), 100);
    // After done the same answer, whatever is fed, until reset().
    assert_true(p.feed(head) == Progress::done);
    p.reset();
    assert_true(p.feed("GET / HTTP/1.1\r\n") == Progress::more);
}

void test_parser__pipelining(void **) // rule: H1-PIPE-1
{
    std::string two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                      "POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
                      "GET /4 HTTP/1.1\r\nConnection: close\r\n\r\n"
                      "GET /never HTTP/1.1\r\n\r\n";
    std::vector<Parsed> r = parse(two);
    // Nothing is processed after the request that closes the connection.
    assert_int_equal(r.size(), 4);
    assert_string_equal(r[0].target.c_str(), "/1");
    assert_int_equal(r[0].head_size, 28);
    assert_string_equal(r[1].data.c_str(), "abc");
    assert_string_equal(r[2].data.c_str(), "xy");
    assert_string_equal(r[3].target.c_str(), "/4");
    assert_false(r[3].keep_alive);
}

void test_parser__content_length_body(void **) // rule: H1-LEN-1
{
    Parsed p = accepted("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
    assert_string_equal(p.data.c_str(), "hello");
    assert_true(p.body == Progress::done);
    p = accepted("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
    assert_true(p.body == Progress::more);
    assert_string_equal(p.data.c_str(), "hel");
    // remaining() counts down; a stream kind is none for HTTP/1.
    core::HeadCheck c;
    c.body = core::BodyKind::length;
    c.content_length = 4;
    BodyDecoder d = BodyDecoder::for_check(c, core::Limits{});
    size_t used = 0;
    std::string_view data;
    assert_true(d.decode("ab", used, data) == Progress::more);
    assert_int_equal(d.remaining(), 2);
    assert_false(d.complete());
    assert_true(d.decode("cdef", used, data) == Progress::done);
    assert_int_equal(used, 2);
    assert_true(d.complete());
    assert_true(d.decode("ef", used, data) == Progress::done);
    assert_int_equal(used, 0);
    c.body = core::BodyKind::stream;
    BodyDecoder s = BodyDecoder::for_check(c, core::Limits{});
    assert_true(s.decode("x", used, data) == Progress::done);
    assert_int_equal(used, 0);
    c.body = core::BodyKind::chunked;
    assert_int_equal(BodyDecoder::for_check(c, core::Limits{}).remaining(), -1);
}

void test_parser__chunk_size(void **) // rule: H1-CHUNK-1
{
    Parsed p = accepted(kChunkedHead + "a\r\n0123456789\r\n00010\r\n0123456789abcdef\r\n000\r\n\r\n");
    assert_true(p.body == Progress::done);
    assert_int_equal(p.data.size(), 26);
    p = accepted(kChunkedHead + "A\r\n0123456789\r\n0\r\n\r\n");
    assert_int_equal(p.data.size(), 10);
    for (const char *bad : {"6_0\r\n", "+5\r\n", "-5\r\n", " 0\r\n", "\r\n", ";a\r\n", "0x5\r\n", "g\r\n"}) {
        body_refused(kChunkedHead + bad, 400, "H1-CHUNK-1");
    }
    // 2^63 does not fit; 7fffffffffffffff does, with any number of leading zeros.
    body_refused(kChunkedHead + "8000000000000000\r\n", 400, "H1-CHUNK-1");
    p = one(kChunkedHead + "0007fffffffffffffff\r\nab");
    assert_true(p.body == Progress::more);
    assert_string_equal(p.data.c_str(), "ab");
}

void test_parser__chunk_extensions(void **) // rule: H1-CHUNK-2
{
    for (const char *ok : {"1;a\r\n", "1;a=b\r\n", "1 ; a = b ; c\r\n", "1;a=\"q \\\" \\\\ t\"\r\n", "1;a=\"\"\r\n",
                           "1\t;\ta\t=\t\"x\"\t;b\r\n", "1;a=\"\xc3\x9f\"\r\n"}) {
        Parsed p = accepted(kChunkedHead + ok + "x\r\n0;last=1\r\n\r\n");
        assert_true(p.body == Progress::done);
        assert_string_equal(p.data.c_str(), "x");
    }
    for (const char *bad :
         {"1 \r\n", "1;\r\n", "1;a=\r\n", "1;a b\r\n", "1;a=b \r\n", "1;a=\"x\r\n", "1;a=\"x\"y\r\n", "1;a=b=c\r\n",
          "1;=b\r\n", "1;a=\"\x01\"\r\n", "1;a=(b)\r\n", "1;a=\"\\\x01\"\r\n", "1 x\r\n"}) {
        body_refused(kChunkedHead + bad, 400, "H1-CHUNK-2");
    }
}

void test_parser__chunk_framing(void **) // rule: H1-CHUNK-3
{
    body_refused(kChunkedHead + "3\r\nabcd\r\n", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "3\r\nabc\rx", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "3\rabc", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "3;a\rabc", 400, "H1-CHUNK-3");
    body_refused(kChunkedHead + "1;a\rb\r\n", 400, "H1-CHUNK-3");
    // No final CRLF yet: not done, and never dispatched as complete.
    Parsed p = one(kChunkedHead + "3\r\nabc\r\n0\r\n");
    assert_true(p.body == Progress::more);
    p = one(kChunkedHead + "3\r\nabc\r\n0\r\n\r\nGET");
    assert_true(p.body == Progress::done);
}

void test_parser__chunk_line_bounded(void **) // rule: H1-CHUNK-4
{
    core::Limits l;
    l.request_field_size = 30; // "Transfer-Encoding: chunked" and its CRLF are 28
    accepted(kChunkedHead + "1;" + std::string(26, 'a') + "\r\nx\r\n0\r\n\r\n", l); // 30 with its CRLF
    body_refused(kChunkedHead + "1;" + std::string(27, 'a') + "\r\nx\r\n0\r\n\r\n", 400, "H1-CHUNK-4", l);
    body_refused(kChunkedHead + "1;" + std::string(100, 'a'), 400, "H1-CHUNK-4", l);
}

void test_parser__trailers(void **) // rule: H1-TRAILER-1
{
    Parsed p = accepted(kChunkedHead + "1\r\nx\r\n0\r\nX-Sum: abc \r\nX-B:\t1\r\n\r\n");
    assert_true(p.body == Progress::done);
    assert_int_equal(p.trailers.size(), 2);
    assert_string_equal(p.trailers[0].name.c_str(), "X-Sum");
    assert_string_equal(p.trailers[0].value.c_str(), "abc");
    assert_string_equal(p.trailers[1].value.c_str(), "1");
    body_refused(kChunkedHead + "0\r\nX : y\r\n\r\n", 400, "H1-FIELD-1");
    body_refused(kChunkedHead + "0\r\nX: y\x01\r\n\r\n", 400, "H1-FIELD-2");
    body_refused(kChunkedHead + "0\r\nX: y\r\n z\r\n\r\n", 400, "H1-FIELD-3");
    core::Limits l;
    l.request_fields = 3;
    l.request_field_size = 30;
    accepted(kChunkedHead + "0\r\nX: " + std::string(25, 'v') + "\r\n\r\n", l); // 30 with its CRLF
    body_refused(kChunkedHead + "0\r\nX: " + std::string(26, 'v') + "\r\n\r\n", 431, "LIMIT-3", l);
    body_refused(kChunkedHead + "0\r\nX: " + std::string(40, 'v'), 431, "LIMIT-3", l);
    accepted(kChunkedHead + "0\r\nX: 1\r\nY: 2\r\nZ: 3\r\n\r\n", l);
    body_refused(kChunkedHead + "0\r\nX: 1\r\nY: 2\r\nZ: 3\r\nW: 4\r\n\r\n", 431, "LIMIT-2", l);
}

void test_parser__forbidden_trailers(void **) // rule: H1-TRAILER-2
{
    for (const char *name : {"Content-Length", "transfer-encoding", "Host", "Trailer", "Connection", "TE"}) {
        body_refused(kChunkedHead + "0\r\n" + name + ": 1\r\n\r\n", 400, "H1-TRAILER-2");
    }
    accepted(kChunkedHead + "0\r\nContent-MD5: x\r\n\r\n");
}

void test_parser__fill_request_head(void **)
{
    HeadParser p{core::Limits{}};
    std::string buf = "PUT /x?y HTTP/1.0\r\nHost: h:81\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\nbody";
    assert_true(p.feed(buf) == Progress::done);
    assert_int_equal(p.head_size(), buf.size() - 4);
    core::RequestHead head;
    assert_true(fill_request_head(p, head));
    assert_true(head.method == "PUT");
    assert_true(head.target == "/x?y");
    assert_int_equal(head.http_minor, 0);
    assert_int_equal(head.headers.size(), 3);
    assert_true(head.headers[1].name == "x-dup");
    assert_true(head.headers[2].value == "2");
    // NUL-terminated copies in the head's arena, not views into buf.
    assert_true(head.method.data()[3] == '\0');
    assert_true(head.headers[0].value.data() < buf.data() || head.headers[0].value.data() >= buf.data() + buf.size());
    core::HeadCheck c = core::validate_request_head(head, core::Limits{});
    assert_int_equal(c.status, 0);
    assert_true(c.server_port == "81");
}

void test_parser__core_checks_are_left_to_the_core(void **)
{
    // The parser does grammar only: these heads parse, and validate_request_head refuses them.
    const char *cases[][2] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "400"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
        {"GET / HTTP/1.1\r\nExpect: later\r\n\r\n", "417"},
        {"GET * HTTP/1.1\r\n\r\n", "400"},
        {"CONNECT a:443 HTTP/1.1\r\n\r\n", "501"},
    };
    for (auto &c : cases) {
        Parsed p = one(c[0]);
        assert_true(p.head == Progress::done);
        assert_int_equal(p.check_status, std::stoul(c[1]));
    }
}

void test_parser__steady_state_allocates_nothing(void **) // rule: H1-INCR-1
{
    // After the first request, a head with no more fields than before and a chunked body
    // without trailers cost no heap allocation (parser.hh's promise for the forking adapter).
    const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    const std::string next = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "5;x=y\r\nhello\r\n0\r\n\r\n";
    core::HeadCheck chunked;
    chunked.body = core::BodyKind::chunked;
    HeadParser p{core::Limits{}};
    assert_true(p.feed(first) == Progress::done);
    BodyDecoder d = BodyDecoder::for_check(chunked, core::Limits{});
    size_t before = g_allocations.load();
    p.reset();
    Progress r = Progress::more;
    for (size_t n = 1; n <= next.size() && r == Progress::more; ++n) r = p.feed(std::string_view(next.data(), n));
    assert_true(r == Progress::done);
    std::string_view in = body, data;
    size_t used = 0;
    for (int i = 0; i < 10 && r != Progress::error && !in.empty(); ++i) {
        r = d.decode(in, used, data);
        in.remove_prefix(used);
    }
    assert_true(r == Progress::done);
    assert_int_equal(g_allocations.load(), before);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser__simple_get),
        cmocka_unit_test(test_parser__request_line_single_spaces),
        cmocka_unit_test(test_parser__version_syntax),
        cmocka_unit_test(test_parser__crlf_only),
        cmocka_unit_test(test_parser__leading_empty_lines),
        cmocka_unit_test(test_parser__field_names),
        cmocka_unit_test(test_parser__field_values),
        cmocka_unit_test(test_parser__obs_fold),
        cmocka_unit_test(test_parser__limits_while_reading),
        cmocka_unit_test(test_parser__incremental_costs_linear_time),
        cmocka_unit_test(test_parser__pipelining),
        cmocka_unit_test(test_parser__content_length_body),
        cmocka_unit_test(test_parser__chunk_size),
        cmocka_unit_test(test_parser__chunk_extensions),
        cmocka_unit_test(test_parser__chunk_framing),
        cmocka_unit_test(test_parser__chunk_line_bounded),
        cmocka_unit_test(test_parser__trailers),
        cmocka_unit_test(test_parser__forbidden_trailers),
        cmocka_unit_test(test_parser__fill_request_head),
        cmocka_unit_test(test_parser__core_checks_are_left_to_the_core),
        cmocka_unit_test(test_parser__steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
