// parser.cc: the HTTP/1.1 request head parser and the body decoder (parser.hh says why they are
// written by hand, and how the work is split with core::validate_request_head).
//
// The head is read line by line: a line is looked at once, when its LF has arrived, so a head
// fed one byte at a time costs one memchr per call plus one pass per line. While a line is
// incomplete only its length is checked, against the limit it will be held to, so that a
// client that never sends LF is cut at the limit. Every check of a complete line runs in the
// same order whether the line came in one piece or in many, so a split input gets exactly the
// answer the whole input gets. Rule IDs refer to spec/server.md ("HTTP/1.1 wire grammar").
#include "parser.hh"

#include <array>
#include <cstring>

namespace cwsgi::http1 {

namespace {

// At most this many empty lines are skipped before a request line (RFC 9112 section 2.2 asks
// for at least one); more is a client that sends nothing but line ends.
constexpr uint32_t kMaxEmptyLines = 8;

bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The length a completed line is held to: its bytes without the CR of its CRLF. For a line
// whose LF has not arrived, the same count of the bytes so far (a last CR may still be the
// line's own), so that the partial count never exceeds the final one.
size_t content_length(std::string_view line) { return line.size() - (!line.empty() && line.back() == '\r' ? 1 : 0); }

using core::is_tchar;

// Why a field line that failed split_field_line's walk is refused, and under which rule: the
// checks in the order the spec gives them, so that a line breaking two rules is named the same
// way whatever path found it.
const char *field_line_error(std::string_view line, const char *&rule)
{
    rule = "H1-LINE-3";
    if (line.find('\r') != std::string_view::npos) return "bare CR";
    rule = "H1-FIELD-3";
    if (is_ows(line.front())) return "field line starts with whitespace (obs-fold)";
    rule = "H1-FIELD-1";
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return "field line without a colon";
    if (!core::is_token(line.substr(0, colon))) return "field name is not a token";
    rule = "H1-FIELD-2";
    return "field value has a control character";
}

// One field line without its CRLF: field-name ":" OWS field-value OWS (RFC 9112 section 5).
// The name must be a token, which also refuses whitespace before the colon and an empty name;
// the value may hold no control byte but HTAB (so no bare CR). One walk over the name, one
// word-at-a-time test of the value; the error path looks again to say which rule failed.
// Returns the error's reason (nullptr when the line is valid) and its rule in `rule`.
const char *split_field_line(std::string_view line, std::string_view &name, std::string_view &value, const char *&rule)
{
    const auto *p = reinterpret_cast<const unsigned char *>(line.data());
    const size_t n = line.size();
    size_t i = 0;
    while (i < n && is_tchar(p[i])) ++i;
    if (i > 0 && i < n && p[i] == ':') {
        name = line.substr(0, i);
        size_t b = i + 1, e = n;
        while (b < e && is_ows(line[b])) ++b;
        while (e > b && is_ows(line[e - 1])) --e;
        value = line.substr(b, e - b);
        if (core::is_field_value(value)) return nullptr;
    }
    return field_line_error(line, rule);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// HeadParser

HeadParser::HeadParser(const core::Limits &limits) : limits_(limits) {}

Progress HeadParser::refuse(uint32_t status, const char *rule, const char *reason)
{
    error_ = Error{status, reason, rule};
    state_ = State::error;
    return Progress::error;
}

// LIMIT-1 (414) for the request line, LIMIT-3 (431) for a field line, counted as the core
// counts them: the request line without its CRLF, a field line with it.
Progress HeadParser::line_too_long(size_t content)
{
    if (state_ == State::start) {
        if (limits_.request_line > 0 && content > limits_.request_line) {
            return refuse(414, "LIMIT-1", "request line over the limit");
        }
    } else if (limits_.request_field_size > 0 && content + 2 > limits_.request_field_size) {
        return refuse(431, "LIMIT-3", "header field over the limit");
    }
    return Progress::more;
}

Progress HeadParser::feed(std::string_view buf)
{
    if (state_ == State::done) {
        // The same head again, perhaps at a new address: the views follow the buffer.
        if (buf.data() != buf_.data()) {
            buf_ = buf;
            publish();
        }
        return Progress::done;
    }
    if (state_ == State::error) return Progress::error;
    if (buf.size() < pos_) {
        // Not the bytes of the previous call (a caller's bug): start over on these ones
        // rather than read past their end.
        reset();
    }
    buf_ = buf;
    const char *data = buf.data();
    for (;;) {
        const void *lf = pos_ < buf.size() ? std::memchr(data + pos_, '\n', buf.size() - pos_) : nullptr;
        if (lf == nullptr) {
            pos_ = buf.size();
            return line_too_long(content_length(buf.substr(line_start_)));
        }
        size_t end = static_cast<size_t>(static_cast<const char *>(lf) - data);
        pos_ = end + 1;
        std::string_view line = buf.substr(line_start_, end - line_start_);
        // The limit first, as for an incomplete line, then the line end, then the grammar.
        if (line_too_long(content_length(line)) == Progress::error) return Progress::error;
        // H1-LINE-3: every line ends with CRLF; a bare LF ends nothing.
        if (line.empty() || line.back() != '\r') return refuse(400, "H1-LINE-3", "line ended by a bare LF");
        line.remove_suffix(1);
        const size_t off = line_start_;
        line_start_ = pos_;
        if (state_ == State::start) {
            if (line.empty()) {
                // H1-LINE-4: a few empty lines before the request line are skipped.
                if (++empty_lines_ > kMaxEmptyLines) {
                    return refuse(400, "H1-LINE-4", "too many empty lines before the request line");
                }
                continue;
            }
            // H1-LINE-3: a CR appears only before LF (split_field_line checks field lines).
            if (line.find('\r') != std::string_view::npos) return refuse(400, "H1-LINE-3", "bare CR");
            if (request_line(line) == Progress::error) return Progress::error;
            method_.off += off;
            target_.off += off;
            state_ = State::fields;
            continue;
        }
        if (line.empty()) {
            head_size_ = pos_;
            state_ = State::done;
            publish();
            return Progress::done;
        }
        if (field_line(line, off) == Progress::error) return Progress::error;
    }
}

// H1-LINE-1/2 and REQ-LINE-2: method SP request-target SP HTTP-version, each part non-empty and
// separated by exactly one SP. What the method and target may hold is the core's to check
// (REQ-LINE-1, REQ-LINE-3/4); here only where they end.
Progress HeadParser::request_line(std::string_view line)
{
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) {
        return refuse(400, "H1-LINE-1", "request line is not method SP target SP version");
    }
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
        return refuse(400, "H1-LINE-1", "request line is not method SP target SP version");
    }
    std::string_view v = line.substr(sp2 + 1);
    // HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (RFC 9112 section 2.3); an
    // extra SP anywhere ends up in here and fails it too.
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' || !is_digit(v[7])) {
        return refuse(400, "H1-LINE-2", "malformed HTTP version");
    }
    major_ = static_cast<uint32_t>(v[5] - '0');
    minor_ = static_cast<uint32_t>(v[7] - '0');
    if (major_ != 1 || minor_ > 1) return refuse(505, "REQ-LINE-2", "unsupported HTTP version");
    method_ = {0, sp1};
    target_ = {sp1 + 1, sp2 - sp1 - 1};
    return Progress::more;
}

Progress HeadParser::field_line(std::string_view line, size_t off)
{
    // LIMIT-2: one field over the count is enough to refuse, before it is stored.
    if (limits_.request_fields > 0 && spans_.size() >= limits_.request_fields) {
        return refuse(431, "LIMIT-2", "too many header fields");
    }
    std::string_view name, value;
    const char *rule = "";
    if (const char *why = split_field_line(line, name, value, rule)) return refuse(400, rule, why);
    const char *base = buf_.data();
    spans_.push_back({{off, name.size()}, {static_cast<size_t>(value.data() - base), value.size()}});
    return Progress::more;
}

void HeadParser::publish()
{
    fields_.clear();
    const char *base = buf_.data();
    for (const FieldSpan &f : spans_) {
        fields_.push_back(
            {std::string_view(base + f.name.off, f.name.len), std::string_view(base + f.value.off, f.value.len)});
    }
}

std::string_view HeadParser::method() const { return buf_.substr(method_.off, method_.len); }

std::string_view HeadParser::target() const { return buf_.substr(target_.off, target_.len); }

void HeadParser::reset()
{
    buf_ = {};
    pos_ = 0;
    state_ = State::start;
    method_ = target_ = {};
    major_ = minor_ = 1;
    spans_.clear();
    fields_.clear();
    line_start_ = 0;
    empty_lines_ = 0;
    head_size_ = 0;
    error_ = {};
}

bool fill_request_head(const HeadParser &parser, core::RequestHead &head)
{
    head.method = head.keep(parser.method());
    head.target = head.keep(parser.target());
    if (head.method.data() == nullptr || head.target.data() == nullptr) return false;
    head.http_major = parser.http_major();
    head.http_minor = parser.http_minor();
    if (!head.headers.reserve(head.arena, parser.fields().size())) return false;
    for (const FieldView &f : parser.fields()) {
        if (!head.add_header(f.name, f.value)) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// BodyDecoder

namespace {

// qdtext and the second byte of a quoted-pair (RFC 9110 section 5.6.4), obs-text included.
bool is_qdtext(unsigned char c) { return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c != 0x5c && c != 0x7f); }
bool is_pair_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

} // namespace

BodyDecoder BodyDecoder::for_check(const core::HeadCheck &check, const core::Limits &limits)
{
    BodyDecoder d;
    d.limits_ = limits;
    d.kind_ = check.body == core::BodyKind::stream ? core::BodyKind::none : check.body;
    if (d.kind_ == core::BodyKind::length) d.remaining_ = check.content_length > 0 ? check.content_length : 0;
    return d;
}

Progress BodyDecoder::refuse(uint32_t status, const char *rule, const char *reason)
{
    error_ = Error{status, reason, rule};
    state_ = Chunk::error;
    return Progress::error;
}

bool BodyDecoder::complete() const { return state_ == Chunk::done; }

int64_t BodyDecoder::remaining() const { return kind_ == core::BodyKind::chunked ? -1 : remaining_; }

Progress BodyDecoder::decode(std::string_view in, size_t &consumed, std::string_view &data)
{
    consumed = 0;
    data = {};
    if (state_ == Chunk::done) return Progress::done;
    if (state_ == Chunk::error) return Progress::error;
    if (kind_ == core::BodyKind::chunked) return decode_chunked(in, consumed, data);
    return decode_length(in, consumed, data);
}

Progress BodyDecoder::decode_length(std::string_view in, size_t &consumed, std::string_view &data)
{
    size_t n = static_cast<uint64_t>(remaining_) < in.size() ? static_cast<size_t>(remaining_) : in.size();
    data = in.substr(0, n);
    consumed = n;
    remaining_ -= static_cast<int64_t>(n);
    if (remaining_ > 0) return Progress::more;
    state_ = Chunk::done;
    return Progress::done;
}

// One byte of a chunk-size line (chunk-size [ chunk-ext ] CRLF), RFC 9112 section 7.1.1:
// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), the value a
// token or a quoted-string. Each state names the position in that grammar.
bool BodyDecoder::chunk_line_byte(unsigned char c)
{
    // H1-CHUNK-4: the line is bounded like a field line.
    if (limits_.request_field_size > 0 && ++line_bytes_ > limits_.request_field_size) {
        refuse(400, "H1-CHUNK-4", "chunk-size line over the limit");
        return false;
    }
    const bool ws = c == ' ' || c == '\t';
    switch (state_) {
    case Chunk::size_first:
    case Chunk::size: {
        int h = hex_digit(c);
        if (h >= 0) {
            // H1-CHUNK-1: the size fits in 63 bits (it is compared with signed counts).
            if (chunk_left_ > (uint64_t(INT64_MAX) >> 4)) {
                refuse(400, "H1-CHUNK-1", "chunk size overflows");
                return false;
            }
            chunk_left_ = chunk_left_ * 16 + static_cast<uint64_t>(h);
            state_ = Chunk::size;
            return true;
        }
        if (state_ == Chunk::size_first) break;
        if (ws)
            state_ = Chunk::ext_bws_semi;
        else if (c == ';')
            state_ = Chunk::ext_bws_name;
        else if (c == '\r')
            state_ = Chunk::line_lf;
        else
            break;
        return true;
    }
    case Chunk::ext_bws_semi:
        if (ws) return true;
        if (c == ';') {
            state_ = Chunk::ext_bws_name;
            return true;
        }
        break;
    case Chunk::ext_bws_name:
        if (ws) return true;
        if (is_tchar(c)) {
            state_ = Chunk::ext_name;
            return true;
        }
        break;
    case Chunk::ext_name:
        if (is_tchar(c)) return true;
        if (ws)
            state_ = Chunk::ext_after_name;
        else if (c == '=')
            state_ = Chunk::ext_bws_value;
        else if (c == ';')
            state_ = Chunk::ext_bws_name;
        else if (c == '\r')
            state_ = Chunk::line_lf;
        else
            break;
        return true;
    case Chunk::ext_after_name:
        if (ws) return true;
        if (c == '=')
            state_ = Chunk::ext_bws_value;
        else if (c == ';')
            state_ = Chunk::ext_bws_name;
        else
            break;
        return true;
    case Chunk::ext_bws_value:
        if (ws) return true;
        if (is_tchar(c))
            state_ = Chunk::ext_token;
        else if (c == '"')
            state_ = Chunk::ext_quoted;
        else
            break;
        return true;
    case Chunk::ext_token:
        if (is_tchar(c)) return true;
        if (ws)
            state_ = Chunk::ext_bws_semi;
        else if (c == ';')
            state_ = Chunk::ext_bws_name;
        else if (c == '\r')
            state_ = Chunk::line_lf;
        else
            break;
        return true;
    case Chunk::ext_quoted:
        if (c == '"')
            state_ = Chunk::ext_after_quoted;
        else if (c == '\\')
            state_ = Chunk::ext_quoted_pair;
        else if (!is_qdtext(c))
            break;
        return true;
    case Chunk::ext_quoted_pair:
        if (!is_pair_char(c)) break;
        state_ = Chunk::ext_quoted;
        return true;
    case Chunk::ext_after_quoted:
        if (ws)
            state_ = Chunk::ext_bws_semi;
        else if (c == ';')
            state_ = Chunk::ext_bws_name;
        else if (c == '\r')
            state_ = Chunk::line_lf;
        else
            break;
        return true;
    case Chunk::line_lf:
        if (c != '\n') {
            refuse(400, "H1-CHUNK-3", "chunk-size line without CRLF");
            return false;
        }
        line_bytes_ = 0;
        state_ = chunk_left_ > 0 ? Chunk::data : Chunk::trailer;
        return true;
    default: break;
    }
    if (c == '\n') {
        refuse(400, "H1-CHUNK-3", "chunk-size line without CRLF");
    } else if (state_ == Chunk::size_first || state_ == Chunk::size) {
        refuse(400, "H1-CHUNK-1", "chunk size is not 1*HEXDIG");
    } else {
        refuse(400, "H1-CHUNK-2", "malformed chunk extension");
    }
    return false;
}

// Bytes of the trailer section from in[i]: field lines, then the empty line that ends the
// body. A line may arrive in pieces, and the caller may drop the bytes it has been told are
// consumed, so an incomplete line is kept in line_ (bounded by the field-line limit).
Progress BodyDecoder::trailer_bytes(std::string_view in, size_t &i)
{
    while (i < in.size()) {
        const void *lf = std::memchr(in.data() + i, '\n', in.size() - i);
        size_t end = lf != nullptr ? static_cast<size_t>(static_cast<const char *>(lf) - in.data()) : in.size();
        line_.append(in.data() + i, end - i);
        i = end;
        // H1-TRAILER-1 and LIMIT-3: the line is bounded as a head's field line is.
        if (limits_.request_field_size > 0 && content_length(line_) + 2 > limits_.request_field_size) {
            return refuse(431, "LIMIT-3", "trailer field over the limit");
        }
        if (lf == nullptr) return Progress::more;
        ++i; // the LF
        std::string_view line = line_;
        if (line.empty() || line.back() != '\r') return refuse(400, "H1-LINE-3", "line ended by a bare LF");
        line.remove_suffix(1);
        if (line.empty()) {
            state_ = Chunk::done;
            return Progress::done;
        }
        if (limits_.request_fields > 0 && trailers_.size() >= limits_.request_fields) {
            return refuse(431, "LIMIT-2", "too many trailer fields");
        }
        std::string_view name, value;
        const char *rule = "";
        if (const char *why = split_field_line(line, name, value, rule)) return refuse(400, rule, why);
        // H1-TRAILER-2: the core's list (EXT-TRAILERS-2), refused on the wire.
        if (core::is_forbidden_trailer(name)) return refuse(400, "H1-TRAILER-2", "forbidden trailer field");
        trailers_.push_back({std::string(name), std::string(value)});
        line_.clear();
    }
    return Progress::more;
}

Progress BodyDecoder::decode_chunked(std::string_view in, size_t &consumed, std::string_view &data)
{
    size_t i = 0;
    while (i < in.size()) {
        switch (state_) {
        case Chunk::data: {
            uint64_t n = chunk_left_ < in.size() - i ? chunk_left_ : in.size() - i;
            data = in.substr(i, static_cast<size_t>(n));
            chunk_left_ -= n;
            if (chunk_left_ == 0) state_ = Chunk::data_cr;
            consumed = i + static_cast<size_t>(n);
            return Progress::more;
        }
        case Chunk::data_cr:
        case Chunk::data_lf: {
            // H1-CHUNK-3: the data is followed by CRLF, nothing else.
            char want = state_ == Chunk::data_cr ? '\r' : '\n';
            if (in[i] != want) return refuse(400, "H1-CHUNK-3", "chunk data not followed by CRLF");
            ++i;
            if (state_ == Chunk::data_lf) {
                chunk_left_ = 0;
                state_ = Chunk::size_first;
            } else {
                state_ = Chunk::data_lf;
            }
            break;
        }
        case Chunk::trailer: {
            Progress p = trailer_bytes(in, i);
            consumed = i;
            return p;
        }
        default:
            if (!chunk_line_byte(static_cast<unsigned char>(in[i]))) return Progress::error;
            ++i;
            break;
        }
    }
    consumed = i;
    return Progress::more;
}

} // namespace cwsgi::http1
