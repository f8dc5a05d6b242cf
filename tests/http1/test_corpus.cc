// test_corpus.cc: gunicorn's HTTP/1 parser corpus (third-party, MIT) through lib/http1 and the
// core's head check: every valid case parses to what gunicorn expects, every invalid one is
// refused (by the parser, the core, the body decoder, or because it never completes), each one
// whole and one byte at a time. The corpus is read at run time from $CWSGI_CORPUS or
// ../shared/corpus beside the source tree, never copied here; without it the test is skipped.
// rule: H1-INCR-1, H1-PIPE-1
#include "cmocka.hh"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../../conformance/driver/json_bytes.hh" // the manifest's base64 and Latin-1 text, as the driver reads them
#include "http1_driver.hh"

using namespace cwsgi;
using namespace cwsgi::http1;
using cwsgi::http1::testing::drive;
using cwsgi::http1::testing::every_byte;
using cwsgi::http1::testing::Parsed;

namespace {

std::string manifest_path()
{
    std::vector<std::string> dirs;
    if (const char *env = std::getenv("CWSGI_CORPUS")) dirs.push_back(env);
    if (const char *src = std::getenv("CWSGI_SOURCE_DIR")) dirs.push_back(std::string(src) + "/../shared/corpus");
    for (const std::string &d : dirs) {
        std::string p = d + "/gunicorn-requests-manifest.json";
        if (std::ifstream(p).good()) return p;
    }
    return {};
}

// The case's cfg as our limits, or false when it needs an option CWSGI does not have (proxy
// protocol, obs-fold unfolding, header maps...). gunicorn 26 reads a field-size limit of 0 as
// its default (8190), which the invalid case limit_header_default_01 checks.
bool limits_for(const nlohmann::json &cfg, core::Limits &l)
{
    for (auto it = cfg.begin(); it != cfg.end(); ++it) {
        if (it.key() == "limit_request_line") {
            l.request_line = it.value().get<uint32_t>();
        } else if (it.key() == "limit_request_fields") {
            l.request_fields = it.value().get<uint32_t>();
        } else if (it.key() == "limit_request_field_size") {
            uint32_t v = it.value().get<uint32_t>();
            l.request_field_size = v == 0 ? 8190 : v;
        } else {
            return false;
        }
    }
    return true;
}

// gunicorn drops fields whose name has '_' by default (header_map "drop"), so that they cannot
// pose as the '-' names in a WSGI environ. We pass every token name on (the core's environ
// rules decide what the app sees), so those fields are left out of the comparison.
bool same_fields(const std::vector<core::Header> &got, const nlohmann::json &want)
{
    std::vector<const core::Header *> kept;
    for (const core::Header &h : got) {
        if (h.name.find('_') == std::string::npos) kept.push_back(&h);
    }
    if (kept.size() != want.size()) return false;
    for (size_t i = 0; i < kept.size(); ++i) {
        if (!core::iequals(kept[i]->name, want[i][0].get<std::string>())) return false;
        if (kept[i]->value != conf::latin1(want[i][1].get<std::string>())) return false;
    }
    return true;
}

// Where CWSGI's spec refuses what gunicorn serves, on purpose: the case must be refused by the
// core under that rule (and the forking adapter answers it so).
const std::map<std::string, std::string> kStricterBySpec = {
    {"valid/027", "REQ-LINE-4"},                                 // raw non-ASCII in the target
    {"valid/rfc9112_target_absolute_userinfo_01", "REQ-LINE-3"}, // user@ in an http URI
    {"valid/rfc9112_target_authority_connect_01", "REQ-LINE-3"}, // CONNECT: no tunnels
    {"valid/rfc9112_target_authority_ipv6_01", "REQ-LINE-3"},
};

// Where gunicorn refuses what our spec serves. None today: a second Content-Type field, the
// one such case before, is refused by the core too (REQ-HDR-5). Kept so that a future
// difference is stated here, case by case, rather than passing unnoticed.
const std::map<std::string, std::string> kLaxerBySpec = {};

// Why a valid case's parse differs from gunicorn's expectation ("" when it does not).
std::string valid_mismatch(const std::vector<Parsed> &got, const nlohmann::json &c)
{
    const nlohmann::json &expect = c["expect"];
    bool incomplete = c.value("incomplete", false);
    if (got.empty()) return "nothing parsed";
    for (size_t i = 0; i < expect.size(); ++i) {
        if (i >= got.size()) {
            // A server may close after a request that does not keep the connection.
            if (!got.back().keep_alive) break;
            return "request " + std::to_string(i) + " missing";
        }
        const Parsed &p = got[i];
        const nlohmann::json &e = expect[i];
        if (p.head != Progress::done) return "head not done (rule " + std::string(p.error.rule) + ")";
        if (p.check_status != 0) return "core refused it with " + std::to_string(p.check_status);
        if (p.method != e["method"].get<std::string>()) return "method";
        if (p.target != e["uri"].get<std::string>()) return "target";
        if (p.major != e["version"][0].get<uint32_t>() || p.minor != e["version"][1].get<uint32_t>()) return "version";
        if (!same_fields(p.fields, e["headers"])) return "headers";
        if (incomplete && i + 1 == expect.size()) {
            // The body is cut short on purpose: it must still be waiting for more.
            if (p.body != Progress::more) return "incomplete body not waiting";
            continue;
        }
        if (p.body != Progress::done) return "body not done (rule " + std::string(p.error.rule) + ")";
        if (p.data != conf::b64decode(e["body_b64"].get<std::string>())) return "body";
        if (!same_fields(p.trailers, e["trailers"])) return "trailers";
    }
    return {};
}

// How an invalid case was refused ("" when it was not).
std::string invalid_refusal(const std::vector<Parsed> &got)
{
    for (const Parsed &p : got) {
        if (p.head == Progress::error) return "parser " + std::to_string(p.error.status) + " " + p.error.rule;
        if (p.head == Progress::more) return "incomplete head";
        if (p.check_status != 0) return "core " + std::to_string(p.check_status);
        if (p.body == Progress::error) return "decoder " + std::to_string(p.error.status) + " " + p.error.rule;
        if (p.body == Progress::more) return "incomplete body";
    }
    return {};
}

void test_corpus__gunicorn_requests(void **)
{
    std::string path = manifest_path();
    if (path.empty()) {
        print_message("gunicorn corpus not found ($CWSGI_CORPUS or ../shared/corpus): skipped\n");
        skip();
    }
    std::ifstream f(path);
    nlohmann::json m = nlohmann::json::parse(f);
    int valid_ok = 0, valid_bad = 0, invalid_ok = 0, invalid_bad = 0, skipped = 0, stricter = 0, laxer = 0;
    std::map<std::string, int> how;
    int status_differs = 0;
    for (const nlohmann::json &c : m["cases"]) {
        core::Limits limits;
        std::string name = c["name"].get<std::string>();
        if (!limits_for(c["cfg"], limits)) {
            ++skipped;
            continue;
        }
        std::string input = conf::b64decode(c["request_b64"].get<std::string>());
        testing::violations().clear();
        std::vector<Parsed> whole = drive(input, {}, limits);
        std::vector<Parsed> bytes = drive(input, every_byte(input.size()), limits);
        if (!(whole == bytes) || !testing::violations().empty()) {
            print_error("%s: whole and byte-by-byte differ or an invariant broke\n", name.c_str());
            (c["kind"] == "valid" ? valid_bad : invalid_bad)++;
            continue;
        }
        if (auto it = kStricterBySpec.find(name); it != kStricterBySpec.end()) {
            if (whole.front().check_status == 0 || whole.front().check_rule != it->second) {
                print_error("%s: not refused under %s\n", name.c_str(), it->second.c_str());
                ++valid_bad;
            } else {
                ++stricter;
            }
            continue;
        }
        if (auto it = kLaxerBySpec.find(name); it != kLaxerBySpec.end()) {
            if (!invalid_refusal(whole).empty()) {
                print_error("%s: refused, though the spec serves it (%s)\n", name.c_str(), it->second.c_str());
                ++invalid_bad;
            } else {
                ++laxer;
            }
            continue;
        }
        if (c["kind"] == "valid") {
            std::string why = valid_mismatch(whole, c);
            if (why.empty()) {
                ++valid_ok;
            } else {
                ++valid_bad;
                print_error("%s (valid): %s\n", name.c_str(), why.c_str());
            }
        } else {
            std::string why = invalid_refusal(whole);
            if (why.empty()) {
                ++invalid_bad;
                print_error("%s (invalid, %s): accepted\n", name.c_str(), c["expect_error"].get<std::string>().c_str());
            } else {
                ++invalid_ok;
                how[why.substr(0, why.find(' '))]++;
                // The status we answer beside the one the corpus suggests, for the report.
                uint32_t ours = 0;
                for (const Parsed &p : whole) {
                    ours = p.head == Progress::error || p.body == Progress::error ? p.error.status : p.check_status;
                    if (ours != 0) break;
                }
                if (ours != 0 && ours != c["suggested_status"].get<uint32_t>()) {
                    ++status_differs;
                    print_message("  %s: %s (corpus suggests %u)\n", name.c_str(), why.c_str(),
                                  c["suggested_status"].get<uint32_t>());
                }
            }
        }
    }
    print_message("gunicorn corpus: valid %d/%d parsed, invalid %d/%d refused, %d skipped (cfg we lack)\n", valid_ok,
                  valid_ok + valid_bad, invalid_ok, invalid_ok + invalid_bad, skipped);
    print_message("  valid but refused by our spec: %d; invalid but served by our spec: %d\n", stricter, laxer);
    for (auto &[k, n] : how) print_message("  refused by %s: %d\n", k.c_str(), n);
    print_message("  %d refused with another status than the corpus suggests\n", status_differs);
    assert_int_equal(valid_bad, 0);
    assert_int_equal(invalid_bad, 0);
    assert_true(valid_ok > 40 && invalid_ok > 50); // the corpus was really read
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus__gunicorn_requests),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
