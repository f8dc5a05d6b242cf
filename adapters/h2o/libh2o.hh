// libh2o.hh: the one place the adapter includes libh2o (h2o 2.2.5, Debian's libh2o-evloop-dev).
//
// libh2o's headers are C; they choose the event loop by H2O_USE_LIBUV, which the build sets to 0
// (the evloop flavour of the library). libh2o also exports the picohttpparser it was built with
// but ships no header for it: the two declarations the adapter uses are repeated here, with the
// signature of the picohttpparser release bundled in h2o 2.2.5 (deps/picohttpparser).
#pragma once

#include <cstddef>

extern "C" {
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
/// Parses an HTTP/1.x request head: returns its length in bytes, -1 when malformed, -2 when
/// incomplete; `num_headers` is the capacity on entry and the count on return.
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);
}
