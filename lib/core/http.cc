// http.cc: request-head validation, response-header rules and the framing decision.
//
// Written by hand because no maintained library offers these as separate checks: HTTP parser
// libraries (picohttpparser, llhttp) parse bytes but leave the semantic checks (duplicate
// Host, CL+TE, transfer-coding lists, limits, which status to answer) to the server, and each
// of our engines sees the request differently. One implementation here makes every adapter
// answer a malformed request the same way. Rule IDs refer to spec/server.md and response.md.
#include "http.hh"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "cwsgi.h"

namespace cwsgi::core {

namespace {

using detail::kTchar;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trim_ows(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Word-at-a-time byte tests (the classic "has a zero byte" trick): nonzero when some byte of
// `x` is below `n` (n <= 128), or equal to `c`. Exact about whether such a byte exists.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;
constexpr uint64_t bytes_below(uint64_t x, uint8_t n) { return (x - kOnes * n) & ~x & kHighs; }
constexpr uint64_t bytes_equal(uint64_t x, uint8_t c) { return bytes_below(x ^ (kOnes * c), 1); }

// Whether some byte of `s` is `bad`, testing 8 bytes at a time for a `suspect` word first
// (the last word overlaps the one before it). A suspect word is looked at byte by byte, so
// `suspect` may be wider than `bad` but must never miss one of its bytes.
template <class Suspect, class Bad> bool any_byte(std::string_view s, Suspect suspect, Bad bad)
{
    const char *p = s.data();
    size_t n = s.size();
    auto word_has = [&](const char *w) {
        uint64_t x;
        std::memcpy(&x, w, 8);
        if (!suspect(x)) return false;
        for (int i = 0; i < 8; ++i) {
            if (bad(static_cast<unsigned char>(w[i]))) return true;
        }
        return false;
    };
    if (n < 8) {
        for (size_t i = 0; i < n; ++i) {
            if (bad(static_cast<unsigned char>(p[i]))) return true;
        }
        return false;
    }
    for (size_t i = 0; i + 8 <= n; i += 8) {
        if (word_has(p + i)) return true;
    }
    return (n % 8) != 0 && word_has(p + n - 8);
}

// RESP-HDR-2: CR, LF or NUL in a response field value.
bool has_cr_lf_nul(std::string_view s)
{
    // A byte below 14 is suspect (CR is 13): one test per word, exact only when it fires.
    return any_byte(
        s, [](uint64_t x) { return bytes_below(x, 14) != 0; },
        [](unsigned char c) { return c == '\r' || c == '\n' || c == 0; });
}

HeadCheck fail(uint32_t status, const char *rule, std::string reason)
{
    HeadCheck c;
    c.status = status;
    c.rule = rule;
    c.reason = std::move(reason);
    c.keep_alive = false;
    return c;
}

// Request-target characters (RFC 3986 plus '%' escapes and the '#' some clients still send):
// visible ASCII only; no space, no controls, no bytes >= 0x80 (REQ-LINE-4). 1 for a plain
// one, 2 for the three that split the target ('?', '#') or escape in it ('%'), 0 otherwise.
constexpr std::array<uint8_t, 256> make_target_table()
{
    std::array<uint8_t, 256> t{};
    for (int c = 0x21; c < 0x7f; ++c) t[c] = 1;
    t['?'] = t['#'] = t['%'] = 2;
    return t;
}
constexpr auto kTarget = make_target_table();

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

// Transfer-codings we can pass through to the app still encoded (gunicorn does the same):
// the server removes only the chunked framing; the app sees Transfer-Encoding in its headers.
bool is_passthrough_coding(std::string_view c)
{
    return c == "gzip" || c == "x-gzip" || c == "deflate" || c == "compress" || c == "x-compress";
}

// RFC 3986 reg-name characters: unreserved, sub-delims and '%' (of pct-encoded).
constexpr auto kRegName = detail::alnum_and("-._~!$&'()*+,;=%");

// RFC 3986 authority without userinfo: reg-name or IP-literal, then an optional ":port".
// Checks it and splits it in one walk, into the host and port split_host_port would give.
bool parse_authority(std::string_view a, std::string_view &host, std::string_view &port)
{
    if (a.empty()) return false;
    size_t i = 0;
    if (a[0] == '[') {
        size_t close = a.find(']');
        if (close == std::string_view::npos) return false;
        for (char c : a.substr(1, close - 1)) {
            if (!is_hex(c) && c != ':' && c != '.') return false;
        }
        i = close + 1;
    } else {
        // Stops at '@' (userinfo), '/', ':' and the rest.
        while (i < a.size() && kRegName[static_cast<unsigned char>(a[i])]) ++i;
    }
    host = a.substr(0, i);
    port = {};
    if (i == a.size()) return true;
    if (a[i] != ':') return false;
    port = a.substr(i + 1);
    if (port.size() > 5) return false;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

// REQ-LINE-5 without building the decoded path: 0 when every escape is well-formed and none
// decodes to NUL, 1 for a malformed escape, 2 for an escaped NUL.
int path_escape_error(std::string_view path)
{
    for (size_t i = path.find('%'); i != std::string_view::npos; i = path.find('%', i + 1)) {
        if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) return 1;
        if (path[i + 1] == '0' && path[i + 2] == '0') return 2;
        i += 2;
    }
    return 0;
}

} // namespace

bool split_host_port(std::string_view a, std::string_view &host, std::string_view &port)
{
    host = a;
    port = {};
    if (!a.empty() && a.front() == '[') {
        size_t close = a.find(']');
        if (close == std::string_view::npos) return false;
        host = a.substr(0, close + 1);
        std::string_view rest = a.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return false;
        if (!rest.empty()) port = rest.substr(1);
        return true;
    }
    size_t colon = a.rfind(':');
    if (colon != std::string_view::npos) {
        host = a.substr(0, colon);
        port = a.substr(colon + 1);
    }
    return true;
}

bool FieldList::reserve(Arena &arena, size_t n)
{
    if (size_ + n <= capacity_) return true;
    size_t cap = capacity_ ? capacity_ * 2 : 16;
    while (cap < size_ + n) cap *= 2;
    auto *grown = static_cast<Field *>(arena.alloc(cap * sizeof(Field)));
    if (grown == nullptr) return false;
    for (size_t i = 0; i < size_; ++i) grown[i] = data_[i];
    data_ = grown;
    capacity_ = cap;
    return true;
}

void copy_lower(char *dst, std::string_view src)
{
    // Eight bytes at a time, since every field name of every request and response comes through
    // here and a byte loop cost about five instructions a byte (callgrind). In each byte of the
    // low seven bits, adding 0x3f sets bit 7 from 'A' (0x41) up and adding 0x25 sets it above 'Z'
    // (0x5a), with no carry into the next byte; a byte with its own bit 7 set is not a letter.
    // The marked bit 7, shifted to bit 5, is the 0x20 between the cases.
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    const size_t n = src.size();
    const char *s = src.data();
    auto lower8 = [&](size_t at) {
        uint64_t x;
        std::memcpy(&x, s + at, 8);
        const uint64_t low7 = x & (0x7f * kOnes);
        const uint64_t upper = (low7 + 0x3f * kOnes) & ~(low7 + 0x25 * kOnes) & ~x & (0x80 * kOnes);
        x |= upper >> 2;
        std::memcpy(dst + at, &x, 8);
    };
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) lower8(i);
        if (i < n) lower8(n - 8); // the tail as an overlapping last word: the same bytes again
        return;
    }
    for (size_t i = 0; i < n; ++i) dst[i] = lower(s[i]);
}

bool RequestHead::add_header(std::string_view name, std::string_view value)
{
    // Name and value share one block, each NUL-terminated.
    auto *n = static_cast<char *>(arena.alloc(name.size() + 1 + value.size() + 1));
    if (n == nullptr) return false;
    copy_lower(n, name);
    n[name.size()] = '\0';
    char *v = n + name.size() + 1;
    copy_bytes(v, value.data(), value.size());
    v[value.size()] = '\0';
    return headers.push(arena, {std::string_view(n, name.size()), std::string_view(v, value.size())});
}

bool is_token(std::string_view s)
{
    if (s.empty()) return false;
    // No early exit: four table loads per step, and-ed, keep the loop short for the short
    // names every request and response carries.
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t n = s.size(), i = 0;
    bool ok = true;
    for (; i + 4 <= n; i += 4) ok &= kTchar[p[i]] & kTchar[p[i + 1]] & kTchar[p[i + 2]] & kTchar[p[i + 3]];
    for (; i < n; ++i) ok &= kTchar[p[i]];
    return ok;
}

bool is_forbidden_trailer(std::string_view name)
{
    // Content metadata such as Content-Type is not here: clients send it, gunicorn accepts
    // it, and it cannot change how the body was framed.
    static constexpr std::string_view kForbidden[] = {
        "content-length",
        "transfer-encoding",
        "trailer",
        "host",
        "te",
        "connection",
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "expect",
        "authorization",
        "proxy-authorization",
        "cookie",
    };
    for (std::string_view f : kForbidden) {
        if (iequals(name, f)) return true;
    }
    return false;
}

bool is_field_value(std::string_view s)
{
    // A word is suspect when it holds a control byte (HTAB included) or DEL.
    return !any_byte(
        s, [](uint64_t x) { return (bytes_below(x, 0x20) | bytes_equal(x, 0x7f)) != 0; },
        [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

std::optional<int64_t> parse_content_length(std::string_view v)
{
    if (v.empty() || v.size() > 18) return std::nullopt;
    int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    return n;
}

std::optional<std::string> percent_decode(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
        out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
        i += 2;
    }
    return out;
}

std::optional<std::string_view> percent_decode(std::string_view s, Arena &arena)
{
    auto *out = static_cast<char *>(arena.alloc(s.size() + 1));
    if (out == nullptr) return std::nullopt;
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
        out[n++] = static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
        i += 2;
    }
    out[n] = '\0';
    return std::string_view(out, n);
}

HeadCheck validate_request_head(const RequestHead &head, const Limits &limits)
{
    // REQ-LINE-1: the method is a token; like gunicorn we also refuse lowercase letters,
    // which no registered method has and which usually signal a confused or hostile client.
    if (!is_token(head.method)) return fail(400, "REQ-LINE-1", "method is not a token");
    for (char c : head.method) {
        if (c >= 'a' && c <= 'z') return fail(400, "REQ-LINE-1", "method has lowercase letters");
    }
    // REQ-LINE-2: HTTP/1.x or HTTP/2 only; a well-formed other major gets 505.
    if (head.http_major != 1 && head.http_major != 2) {
        return fail(505, "REQ-LINE-2", "unsupported HTTP major version");
    }
    // LIMIT-1: the request line (method SP target SP HTTP/x.y) fits the limit, else 414.
    size_t line = head.method.size() + 1 + head.target.size() + 1 + 8;
    if (limits.request_line > 0 && line > limits.request_line) {
        return fail(414, "LIMIT-1", "request line longer than " + std::to_string(limits.request_line) + " bytes");
    }
    // REQ-LINE-3/4: the target's form matches the method and uses only visible ASCII.
    std::string_view t = head.target;
    if (t.empty()) return fail(400, "REQ-LINE-3", "empty request target");
    // One walk checks the bytes and notes the first '#', '?' and '%', which split the target
    // below: none of them can come before the path of an absolute-form target.
    size_t hash = t.npos, qmark = t.npos, pct = t.npos;
    for (size_t i = 0; i < t.size(); ++i) {
        uint8_t k = kTarget[static_cast<unsigned char>(t[i])];
        if (k == 1) continue;
        if (k == 0) return fail(400, "REQ-LINE-4", "request target has a byte outside visible ASCII");
        size_t &first = t[i] == '#' ? hash : t[i] == '?' ? qmark : pct;
        if (first == t.npos) first = i;
    }
    bool origin = t[0] == '/';
    bool asterisk = t == "*";
    bool https = t.rfind("https://", 0) == 0 || t.rfind("HTTPS://", 0) == 0;
    bool absolute = !origin && !asterisk && (https || t.rfind("http://", 0) == 0 || t.rfind("HTTP://", 0) == 0);
    if (asterisk && head.method != "OPTIONS") {
        return fail(400, "REQ-LINE-3", "'*' target with a method other than OPTIONS");
    }
    // A CWSGI server is an origin server, not a proxy: it has no tunnels to offer.
    if (head.method == "CONNECT") return fail(501, "REQ-LINE-3", "CONNECT is not served");
    if (!origin && !asterisk && !absolute) {
        return fail(400, "REQ-LINE-3", "request target is not origin-form, absolute-form or '*'");
    }
    // The split the environ uses (ENV-PATH-1): path up to '?' or '#', query up to '#'.
    std::string_view target_authority, target_host, target_port;
    size_t start = 0; // where the path begins in t
    if (absolute) {
        size_t scheme_end = t.find("://") + 3;
        size_t slash = t.find_first_of("/?#", scheme_end);
        if (scheme_end == t.size() || slash == scheme_end) {
            return fail(400, "REQ-LINE-3", "absolute-form target without a host");
        }
        target_authority = t.substr(scheme_end, slash == std::string_view::npos ? t.npos : slash - scheme_end);
        if (!parse_authority(target_authority, target_host, target_port)) {
            return fail(400, "REQ-LINE-3", "absolute-form target with an invalid authority");
        }
        start = slash == std::string_view::npos ? t.size() : slash;
    }
    // The path runs up to the first '?' or '#', the query from that '?' up to '#'.
    size_t end = std::min(hash, t.size());
    std::string_view rest = t.substr(start, end - start);
    size_t q = qmark < end ? qmark - start : std::string_view::npos;
    std::string_view path = rest.substr(0, q);
    // An absolute-form authority may hold a '%' of its own; look in the path alone then.
    bool escaped = absolute ? path.find('%') != std::string_view::npos : pct < path.size();
    // REQ-LINE-5: the path percent-decodes and holds no NUL once decoded.
    if (escaped) {
        if (int bad = path_escape_error(path)) {
            return fail(400, "REQ-LINE-5",
                        bad == 1 ? "malformed percent-escape in the path" : "the decoded path contains NUL");
        }
    }

    // REQ-H2-1: an HTTP/2 :authority is held to the same rule as Host.
    std::string_view h2_host, h2_port;
    if (!head.authority.empty() && !parse_authority(head.authority, h2_host, h2_port)) {
        return fail(400, "REQ-H2-1", ":authority is not a valid authority");
    }
    // LIMIT-2/3: field count and size, else 431.
    if (limits.request_fields > 0 && head.headers.size() > limits.request_fields) {
        return fail(431, "LIMIT-2", "more than " + std::to_string(limits.request_fields) + " header fields");
    }
    HeadCheck ok;
    ok.keep_alive = head.http_major == 2 || head.http_minor >= 1;
    ok.raw_path = asterisk ? std::string_view("*") : path.empty() ? std::string_view("/") : path;
    ok.query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
    ok.path_escaped = escaped;
    ok.scheme = (absolute ? https : head.is_tls) ? std::string_view("https") : std::string_view("http");
    const bool h2_authority = head.http_major == 2 && !head.authority.empty();
    std::string_view host_value, host_host, host_port;
    bool saw_host = false, saw_cl = false, saw_te = false, conn_close = false, conn_keep = false;
    std::vector<std::string> codings;
    int64_t cl = -1;
    for (const Field &h : head.headers) {
        // The field line as gunicorn counts it: name, ": ", value and the closing CRLF.
        if (limits.request_field_size > 0 && h.name.size() + 2 + h.value.size() + 2 > limits.request_field_size) {
            return fail(431, "LIMIT-3",
                        "header field '" + std::string(h.name.substr(0, 64)) + "' longer than " +
                            std::to_string(limits.request_field_size) + " bytes");
        }
        // REQ-HDR-1: names are tokens (this also refuses whitespace before the colon).
        if (!is_token(h.name)) return fail(400, "REQ-HDR-1", "header name is not a token");
        // REQ-HDR-2: values carry no CR, LF, NUL or other control byte but HTAB.
        if (!is_field_value(h.value)) {
            return fail(400, "REQ-HDR-2", "header '" + std::string(h.name.substr(0, 64)) + "' has a control character");
        }
        // Names are lowercase (RequestHead::add_header), so plain comparisons do; the length
        // picks the one name worth comparing.
        std::string_view v = trim_ows(h.value);
        std::string_view known;
        switch (h.name.size()) {
        case 4: known = "host"; break;
        case 6: known = "expect"; break;
        case 10: known = "connection"; break;
        case 12: known = "content-type"; break;
        case 14: known = "content-length"; break;
        case 17: known = "transfer-encoding"; break;
        default: continue;
        }
        if (h.name != known) continue;
        if (h.name == "host") {
            // REQ-HDR-3: at most one Host, and a valid authority when present.
            if (saw_host) return fail(400, "REQ-HDR-3", "duplicate Host header");
            if (!v.empty() && !parse_authority(v, host_host, host_port)) {
                return fail(400, "REQ-HDR-3", "Host is not a valid authority");
            }
            saw_host = true;
            host_value = v;
            // REQ-H2-1 / ENV-HDR-1: :authority is authoritative (RFC 9113 section 8.3.1); a
            // host field that names the same authority is dropped by the Request, one that
            // differs makes the request malformed.
            if (h2_authority && !iequals(v, head.authority)) {
                return fail(400, "REQ-H2-1", "host field differs from :authority");
            }
        } else if (h.name == "content-type") {
            // REQ-HDR-5: one Content-Type; two would let the app and an intermediary read
            // different media types from one request.
            if (ok.has_content_type) return fail(400, "REQ-HDR-5", "more than one Content-Type");
            ok.content_type = h.value;
            ok.has_content_type = true;
        } else if (h.name == "content-length") {
            // REQ-BODY-2: one Content-Length, 1*DIGIT.
            auto n = parse_content_length(v);
            if (!n) return fail(400, "REQ-BODY-2", "invalid Content-Length");
            if (saw_cl) return fail(400, "REQ-BODY-2", "more than one Content-Length");
            saw_cl = true;
            cl = *n;
        } else if (h.name == "transfer-encoding") {
            saw_te = true;
            size_t pos = 0;
            while (pos <= v.size()) {
                size_t comma = v.find(',', pos);
                if (comma == std::string_view::npos) comma = v.size();
                std::string coding(trim_ows(v.substr(pos, comma - pos)));
                std::transform(coding.begin(), coding.end(), coding.begin(), lower);
                if (!coding.empty()) codings.push_back(std::move(coding));
                pos = comma + 1;
            }
        } else if (h.name == "connection") {
            size_t pos = 0;
            while (pos <= v.size()) {
                size_t comma = v.find(',', pos);
                if (comma == std::string_view::npos) comma = v.size();
                std::string_view opt = trim_ows(v.substr(pos, comma - pos));
                if (iequals(opt, "close")) conn_close = true;
                if (iequals(opt, "keep-alive")) conn_keep = true;
                pos = comma + 1;
            }
        } else if (h.name == "expect") {
            // REQ-HDR-4: only 100-continue is understood; anything else gets 417.
            if (!iequals(v, "100-continue")) return fail(417, "REQ-HDR-4", "unsupported Expect value");
            if (head.http_major == 1 && head.http_minor >= 1) ok.expect_continue = true;
        }
    }

    // REQ-BODY-3..6: the transfer-coding list.
    bool chunked = false;
    if (saw_te) {
        if (head.http_major == 2) return fail(400, "REQ-BODY-3", "Transfer-Encoding in HTTP/2");
        if (head.http_minor == 0) return fail(400, "REQ-BODY-3", "Transfer-Encoding in HTTP/1.0");
        // "identity" is obsolete (RFC 9112 removed it); gunicorn accepts it as a no-op and so
        // do we, so that old clients keep working.
        // Nothing may follow chunked, not even "identity": a message whose list ends in another
        // coding has no framing this server can trust (gunicorn refuses it too).
        bool real = false;
        for (size_t i = 0; i < codings.size(); ++i) {
            const std::string &c = codings[i];
            if (c == "chunked") {
                if (i + 1 != codings.size()) return fail(400, "REQ-BODY-4", "chunked is not the final transfer-coding");
                chunked = true;
            } else if (c != "identity" && !is_passthrough_coding(c)) {
                return fail(501, "REQ-BODY-5", "unsupported transfer-coding '" + c.substr(0, 32) + "'");
            }
            real = real || c != "identity";
        }
        if (real && !chunked) return fail(400, "REQ-BODY-4", "chunked is not the final transfer-coding");
        if (chunked && saw_cl) return fail(400, "REQ-BODY-6", "both Content-Length and Transfer-Encoding");
    }

    if (chunked) {
        ok.body = BodyKind::chunked;
    } else if (saw_cl) {
        ok.body = cl > 0 ? BodyKind::length : BodyKind::none;
        ok.content_length = cl;
    } else if (head.http_major == 2) {
        ok.body = BodyKind::stream;
    }
    // LIMIT-4: a declared length over the body limit gets 413 before any body byte is read.
    if (limits.request_body >= 0 && cl > limits.request_body) {
        return fail(413, "LIMIT-4", "Content-Length " + std::to_string(cl) + " over the body limit");
    }
    if (head.http_major == 1) {
        ok.keep_alive = head.http_minor >= 1 ? !conn_close : (conn_keep && !conn_close);
    }
    // ENV-KEYS-5: SERVER_NAME/PORT from the absolute-form authority, :authority, Host, or the
    // local socket, in that order; every authority source was checked above. Without a port
    // (an authority without one, or a unix socket, which has none) SERVER_PORT is the
    // scheme's default, so that it is never empty (PEP 3333).
    // Each was split when it was checked.
    if (!target_authority.empty()) {
        ok.server_name = target_host;
        ok.server_port = target_port;
    } else if (!head.authority.empty()) {
        ok.server_name = h2_host;
        ok.server_port = h2_port;
    } else if (!host_value.empty()) {
        ok.server_name = host_host;
        ok.server_port = host_port;
    } else {
        ok.server_name = head.local_addr;
        ok.server_port = head.local_port;
    }
    if (ok.server_port.empty()) ok.server_port = ok.scheme == "https" ? "443" : "80";
    return ok;
}

const char *reason_phrase(uint32_t status) { return cwsgi_reason_phrase(status); }

int32_t check_response_header(std::string_view name, std::string_view value)
{
    // RESP-HDR-1/2: token names; values without CR, LF or NUL (other controls are passed on,
    // as Rack 3.2 and RFC 9110 5.5 allow).
    if (!is_token(name) || has_cr_lf_nul(value)) return CWSGI_E_HEADER;
    // RESP-HDR-3: hop-by-hop fields and framing belong to the server. The length picks the
    // one or two names worth comparing (this runs for every header of every response).
    std::string_view a, b;
    switch (name.size()) {
    case 2: a = "te"; break;
    case 6: a = "status"; break;
    case 7: a = "trailer", b = "upgrade"; break;
    case 10: a = "connection", b = "keep-alive"; break;
    case 16: a = "proxy-connection"; break;
    case 17: a = "transfer-encoding"; break;
    default: return CWSGI_OK;
    }
    if (iequals(name, a) || (!b.empty() && iequals(name, b))) return CWSGI_E_FORBIDDEN;
    return CWSGI_OK;
}

FramingDecision decide_framing(const FramingInput &in)
{
    FramingDecision d;
    d.keep_alive = in.request_keep_alive && !in.shutting_down;
    bool no_body_status = (in.status >= 100 && in.status < 200) || in.status == 204 || in.status == 304;
    if (no_body_status) {
        // RESP-NOBODY-2: no body and no framing headers; a 304's Content-Length (describing
        // the selected representation) is the app's to send.
        d.framing = Framing::no_body;
        if (in.status == 304 && in.app_content_length) {
            d.send_content_length = true;
            d.content_length = *in.app_content_length;
        }
        return d;
    }
    if (in.app_content_length) {
        d.framing = in.head_request ? Framing::no_body : Framing::length;
        d.send_content_length = true;
        d.content_length = *in.app_content_length;
        return d;
    }
    if (in.finished_without_body) {
        // RESP-FRAME-2: the app finished before any body byte: the length is known to be 0.
        // For HEAD we cannot know what GET would send, so no Content-Length is invented.
        d.framing = in.head_request ? Framing::no_body : Framing::length;
        d.send_content_length = !in.head_request;
        d.content_length = 0;
        return d;
    }
    if (in.head_request) {
        d.framing = Framing::no_body;
        return d;
    }
    if (in.http_major == 2) {
        d.framing = Framing::stream;
    } else if (in.http_minor >= 1) {
        d.framing = Framing::chunked;
    } else {
        // RESP-FRAME-4: HTTP/1.0 without a length: the connection close ends the body.
        d.framing = Framing::close;
        d.keep_alive = false;
    }
    return d;
}

ErrorResponse make_error_response(uint32_t status)
{
    ErrorResponse r;
    r.status = status;
    r.reason = reason_phrase(status);
    r.body = std::to_string(status) + " " + r.reason + "\n";
    r.headers = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Content-Length", std::to_string(r.body.size())},
        {"Connection", "close"},
    };
    return r;
}

} // namespace cwsgi::core
