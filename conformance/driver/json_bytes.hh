// json_bytes.hh: how raw bytes travel in the JSON that the conformance suite reads: base64
// (the corpus manifest's request_b64 and body_b64, the probe's body_b64) and Latin-1 code points
// written as UTF-8 text (the probe's environ and headers, the manifest's header fields, as
// gunicorn decodes them). Header-only, so that tests/http1/test_corpus.cc reads gunicorn's
// manifest with the driver's own decoding instead of a copy.
#pragma once

#include <cstdint>
#include <string>

namespace conf {

/// The bytes of base64 text `s`. Characters outside the alphabet ('=' padding, line breaks)
/// are skipped; a trailing partial group is dropped.
inline std::string b64decode(const std::string &s)
{
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : s) {
        int v = val(c);
        if (v < 0) continue;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

/// The bytes of UTF-8 text whose code points are all below 0x100 (bytes decoded as Latin-1,
/// so byte 0xE9 arrives as U+00E9). A code point above 0xFF, which neither writer produces,
/// becomes '?'.
inline std::string latin1(const std::string &utf8)
{
    std::string out;
    for (size_t i = 0; i < utf8.size();) {
        auto c = static_cast<unsigned char>(utf8[i]);
        if (c < 0x80) {
            out += static_cast<char>(c);
            i++;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size()) {
            unsigned cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3fu);
            out += static_cast<char>(cp & 0xff);
            i += 2;
        } else {
            out += '?';
            i++;
        }
    }
    return out;
}

} // namespace conf
