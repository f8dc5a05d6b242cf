// http1_driver.hh: drives lib/http1's parser and decoder the way an adapter does, for the unit
// tests and the fuzz target: a head fed whole or in pieces (the buffer growing and moving as a
// connection's would), the body decoded from whatever follows it, pipelined requests in turn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/http.hh"
#include "http1/parser.hh"

namespace cwsgi::http1::testing {

/// What one request of the input turned into.
struct Parsed {
    Progress head = Progress::more; // the HeadParser's last answer
    Error error;                    // the parser's or decoder's error
    uint32_t check_status = 0;      // validate_request_head's status (0: valid)
    std::string check_rule;         // and the rule that decided it
    std::string method, target;
    uint32_t major = 0, minor = 0;
    std::vector<core::Header> fields;
    size_t head_size = 0;
    Progress body = Progress::more; // the decoder's last answer (done for no body)
    std::string data;               // the decoded body
    std::vector<core::Header> trailers;
    bool keep_alive = false;
    bool operator==(const Parsed &o) const
    {
        auto same = [](const std::vector<core::Header> &a, const std::vector<core::Header> &b) {
            if (a.size() != b.size()) return false;
            for (size_t i = 0; i < a.size(); ++i) {
                if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
            }
            return true;
        };
        return head == o.head && error.status == o.error.status && std::string_view(error.rule) == o.error.rule &&
               check_status == o.check_status && check_rule == o.check_rule && method == o.method &&
               target == o.target && major == o.major && minor == o.minor && same(fields, o.fields) &&
               head_size == o.head_size && body == o.body && data == o.data && same(trailers, o.trailers) &&
               keep_alive == o.keep_alive;
    }
};

/// Invariant violations found while driving (views outside the buffer, a decoder that hands
/// out more than it was given); empty when all held.
inline std::vector<std::string> &violations()
{
    static std::vector<std::string> v;
    return v;
}

inline bool inside(std::string_view part, std::string_view whole)
{
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

/// Parses every request of `input`, `cuts` giving where the bytes arrive in pieces (sorted
/// offsets; empty: all at once). Stops after a request that fails, is incomplete, or asks to
/// close the connection (nothing is processed after it). At most `max_requests`.
inline std::vector<Parsed> drive(std::string_view input, const std::vector<size_t> &cuts,
                                 const core::Limits &limits = core::Limits{}, size_t max_requests = 16)
{
    std::vector<Parsed> out;
    size_t arrived = 0; // bytes of input the "connection" has received
    size_t cut = 0;
    auto arrive_more = [&]() {
        if (arrived >= input.size()) return false;
        while (cut < cuts.size() && cuts[cut] <= arrived) ++cut;
        arrived = cut < cuts.size() && cuts[cut] < input.size() ? cuts[cut] : input.size();
        return true;
    };
    arrive_more();
    size_t start = 0; // where the current request starts
    HeadParser parser(limits);
    for (size_t r = 0; r < max_requests; ++r) {
        Parsed p;
        parser.reset();
        for (;;) {
            // A fresh copy each time: the buffer moves, as a connection's may.
            std::string buf(input.substr(start, arrived - start));
            p.head = parser.feed(buf);
            if (p.head == Progress::done) {
                p.method = parser.method();
                p.target = parser.target();
                if (!inside(parser.method(), buf) || !inside(parser.target(), buf)) {
                    violations().push_back("method/target outside the buffer");
                }
                for (const FieldView &f : parser.fields()) {
                    if (!inside(f.name, buf) || !inside(f.value, buf))
                        violations().push_back("field outside the buffer");
                    p.fields.push_back({std::string(f.name), std::string(f.value)});
                }
                p.major = parser.http_major();
                p.minor = parser.http_minor();
                p.head_size = parser.head_size();
                if (p.head_size == 0 || p.head_size > buf.size())
                    violations().push_back("head_size outside the buffer");
                core::RequestHead head;
                if (!fill_request_head(parser, head)) violations().push_back("fill_request_head failed");
                core::HeadCheck check = core::validate_request_head(head, limits);
                p.check_status = check.status;
                p.check_rule = check.rule;
                p.keep_alive = check.keep_alive;
                if (check.status != 0) {
                    out.push_back(std::move(p));
                    return out;
                }
                BodyDecoder body = BodyDecoder::for_check(check, limits);
                size_t at = start + p.head_size; // the first byte not consumed
                for (;;) {
                    std::string pending(input.substr(at, arrived - at));
                    size_t consumed = 0;
                    std::string_view data;
                    p.body = body.decode(pending, consumed, data);
                    if (consumed > pending.size() || !inside(data, pending) || data.size() > consumed) {
                        violations().push_back("decoder handed out more than its input");
                        break;
                    }
                    p.data.append(data);
                    at += consumed;
                    if (p.body == Progress::error) {
                        p.error = body.error();
                        break;
                    }
                    if (p.body == Progress::done) break;
                    if (consumed > 0 && at < arrived) continue;
                    if (!arrive_more()) break;
                }
                if (p.body == Progress::done) {
                    if (!body.complete()) violations().push_back("done but not complete");
                    p.trailers = body.trailers();
                }
                start = at;
                break;
            }
            if (p.head == Progress::error) {
                p.error = parser.error();
                break;
            }
            if (!arrive_more()) break;
        }
        bool go_on = p.head == Progress::done && p.check_status == 0 && p.body == Progress::done && p.keep_alive;
        out.push_back(std::move(p));
        if (!go_on || (start >= input.size() && arrived >= input.size())) break;
        if (start >= arrived && !arrive_more()) break;
    }
    return out;
}

/// Every offset: the input arrives one byte at a time.
inline std::vector<size_t> every_byte(size_t n)
{
    std::vector<size_t> cuts;
    for (size_t i = 1; i < n; ++i) cuts.push_back(i);
    return cuts;
}

} // namespace cwsgi::http1::testing
