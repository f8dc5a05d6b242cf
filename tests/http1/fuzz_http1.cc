// fuzz_http1.cc: the libFuzzer target of lib/http1 (built with clang++
// -fsanitize=fuzzer,address,undefined; tests/http1/run-fuzz.sh runs it for a bounded time).
//
// The first input byte chooses the set-up, the rest is the bytes a client sends:
//   bits 0-1: the limits (gunicorn's defaults, small ones, or none at all);
//   bit 2:    the rest is a chunked body for a BodyDecoder alone, not a request stream;
//   bits 3-7: seed of the points where the bytes are cut into pieces.
// Invariants, each a crash when broken (rule: H1-INCR-1, H1-PIPE-1):
//   - the input whole, cut at random points and (when short) one byte at a time give the
//     same requests, bodies, trailers and errors with the same rules;
//   - every view the parser hands out lies inside the buffer of the last feed();
//   - the decoder never consumes more than it was given nor hands out more data than it
//     consumed, and a Content-Length body never exceeds its length.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http1_driver.hh"

using namespace cwsgi;
using namespace cwsgi::http1;

namespace {

// Byte-by-byte feeding costs O(n^2) here (a fresh copy of the buffer per byte, so that it
// moves as a connection's may): kept to short inputs, where most grammar bugs show anyway;
// longer ones are cut at random points instead.
constexpr size_t kByteByByteMax = 128;

[[noreturn]] void broken(const char *what)
{
    std::fprintf(stderr, "fuzz_http1: invariant broken: %s\n", what);
    std::abort();
}

core::Limits limits_for(uint8_t flags)
{
    core::Limits l;
    switch (flags & 3) {
    case 1:
        l.request_line = 64;
        l.request_fields = 4;
        l.request_field_size = 48;
        break;
    case 2:
        l.request_line = 0;
        l.request_fields = 0;
        l.request_field_size = 0;
        break;
    default: break;
    }
    return l;
}

std::vector<size_t> random_cuts(size_t n, uint32_t seed)
{
    std::vector<size_t> cuts;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t at = 0; at < n;) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        at += 1 + x % 7;
        if (at < n) cuts.push_back(at);
    }
    return cuts;
}

// One chunked body decoded from `in`, arriving at `cuts`, as an adapter reads it.
struct Decoded {
    Progress progress = Progress::more;
    uint32_t status = 0;
    std::string rule, data;
    std::vector<core::Header> trailers;
    size_t consumed = 0;
    bool operator==(const Decoded &o) const
    {
        if (trailers.size() != o.trailers.size()) return false;
        for (size_t i = 0; i < trailers.size(); ++i) {
            if (trailers[i].name != o.trailers[i].name || trailers[i].value != o.trailers[i].value) return false;
        }
        // Where an error stops counting consumed bytes depends on the pieces; nothing else does.
        return progress == o.progress && status == o.status && rule == o.rule && data == o.data &&
               (progress == Progress::error || consumed == o.consumed);
    }
};

Decoded decode_chunked(std::string_view in, const std::vector<size_t> &cuts, const core::Limits &limits)
{
    core::HeadCheck check;
    check.body = core::BodyKind::chunked;
    BodyDecoder d = BodyDecoder::for_check(check, limits);
    Decoded r;
    size_t arrived = 0, cut = 0;
    while (r.progress == Progress::more) {
        if (arrived == in.size()) break;
        arrived = cut < cuts.size() ? cuts[cut++] : in.size();
        // Loop while the decoder makes progress on what has arrived (at most one data run per
        // call); each call gets a fresh copy, the unconsumed bytes only.
        for (int guard = 0; guard < 1 << 20 && r.consumed < arrived; ++guard) {
            std::string pending(in.substr(r.consumed, arrived - r.consumed));
            size_t used = 0;
            std::string_view data;
            r.progress = d.decode(pending, used, data);
            if (used > pending.size() || data.size() > used || !testing::inside(data, pending)) {
                broken("decoder handed out more than its input");
            }
            r.data.append(data);
            r.consumed += used;
            if (r.progress != Progress::more || used == 0) break;
        }
    }
    if (r.progress == Progress::error) {
        r.status = d.error().status;
        r.rule = d.error().rule;
    }
    if (r.progress == Progress::done) {
        if (!d.complete()) broken("done but not complete");
        r.trailers = d.trailers();
    }
    if (d.remaining() != -1) broken("a chunked body's remaining() is not -1");
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    if (size < 1) return 0;
    const uint8_t flags = bytes[0];
    std::string_view input(reinterpret_cast<const char *>(bytes + 1), size - 1);
    core::Limits limits = limits_for(flags);
    std::vector<size_t> cuts = random_cuts(input.size(), flags >> 3);
    if (flags & 4) {
        Decoded whole = decode_chunked(input, {}, limits);
        if (!(decode_chunked(input, cuts, limits) == whole)) broken("chunked body: split differs from whole");
        if (input.size() <= kByteByByteMax &&
            !(decode_chunked(input, testing::every_byte(input.size()), limits) == whole)) {
            broken("chunked body: byte by byte differs from whole");
        }
        return 0;
    }
    testing::violations().clear();
    auto whole = testing::drive(input, {}, limits);
    auto split = testing::drive(input, cuts, limits);
    if (!(split == whole)) broken("requests: split differs from whole");
    if (input.size() <= kByteByByteMax &&
        !(testing::drive(input, testing::every_byte(input.size()), limits) == whole)) {
        broken("requests: byte by byte differs from whole");
    }
    if (!testing::violations().empty()) broken(testing::violations().front().c_str());
    for (const testing::Parsed &p : whole) {
        // A Content-Length body never hands out more than its length.
        if (p.body == Progress::done && p.check_status == 0) {
            for (const core::Header &f : p.fields) {
                if (core::iequals(f.name, "content-length")) {
                    auto n = core::parse_content_length(f.value);
                    if (n && p.data.size() != static_cast<size_t>(*n)) broken("Content-Length body size");
                }
            }
        }
    }
    return 0;
}
