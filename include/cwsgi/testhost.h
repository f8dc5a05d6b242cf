/*
 * cwsgi/testhost.h: drive a CWSGI app in-process, without a socket (like Werkzeug's test
 * client). Load an app.so (or pass the entry of an app linked into the test), build requests
 * in code, and read back the status, headers and body exactly as a server would have sent
 * them. The same core that every adapter uses runs the request, so the spec's rules (header
 * checks, Content-Length accounting, HEAD/204/304, errors before and after commit,
 * on_request_end) apply here too.
 *
 * Link with -lcwsgi-testhost (pkg-config cwsgi-testhost, or CMake cwsgi::testhost).
 * A process may hold one open host at a time: the host is the process's "server".
 */
#ifndef CWSGI_TESTHOST_H
#define CWSGI_TESTHOST_H

#include "../cwsgi.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the test host's exported functions (the library builds with hidden visibility). */
#define CWSGI_TESTHOST_API CWSGI_EXPORT

typedef struct cwsgi_testhost cwsgi_testhost;

/** Options for opening a host; zero-initialise, set struct_size, change what you need. */
typedef struct cwsgi_testhost_options {
    uint32_t struct_size;
    uint32_t log_level;          /* CWSGI_LOG_*; 0 = CWSGI_LOG_WARNING */
    int64_t limit_request_body;  /* bytes; 0 = unlimited */
    const char *script_name;     /* SCRIPT_NAME mount point, or NULL */
    const char *error_log_path;  /* error log file, or NULL for stderr */
    uint64_t capabilities;       /* capabilities the host offers; 0 = its defaults */
    const char *const *settings; /* the app's settings (setting_get, LIFE-SET-4): a NULL-
                                    terminated list of "key=value" strings, split at the first
                                    '=', in the order setting_at gives them; NULL = none. The
                                    host copies them at open. Since: 1.2 */
} cwsgi_testhost_options;

/** A request built in code. Zero-initialise, set struct_size; NULL strings take defaults. */
typedef struct cwsgi_test_request {
    uint32_t struct_size;
    const char *method;          /* NULL = "GET" */
    const char *target;          /* NULL = "/"; the raw request-target */
    const char *protocol;        /* NULL = "HTTP/1.1"; or "HTTP/1.0", "HTTP/2" */
    const cwsgi_header *headers; /* request headers in order (Host defaults to "localhost");
                                    for "HTTP/2" the first Host is sent as :authority and a
                                    later one as a host field */
    size_t n_headers;
    const void *body; /* request body bytes, or NULL */
    size_t body_len;
    uint32_t chunked;             /* 1: send the body with Transfer-Encoding: chunked */
    uint32_t read_piece;          /* deliver the body in pieces of at most this size; 0 = all */
    int64_t disconnect_after;     /* > 0: the client goes away after this many response body
                                     bytes; 0 or negative: it stays */
    const cwsgi_header *trailers; /* request trailers, delivered after the body (with chunked) */
    size_t n_trailers;
    int32_t read_error; /* < 0: once the body bytes are delivered, the next read of the
                           connection fails with this status (CWSGI_E_TIMEOUT,
                           CWSGI_E_BODY) instead of ending the body. The core stops at
                           a Content-Length by itself, so this shows with chunked or
                           with a declared length longer than body_len. Since: 1.1 */
} cwsgi_test_request;

/** What came back. Owned by the host; free with cwsgi_test_response_free. */
typedef struct cwsgi_test_response {
    uint32_t struct_size;
    uint32_t status; /* status sent (0 when nothing was committed) */
    const char *reason;
    const cwsgi_header *headers; /* response headers as the adapter would send them */
    size_t n_headers;
    const char *body; /* body bytes (NUL-terminated for convenience) */
    size_t body_len;
    int32_t outcome;        /* what on_request_end received */
    int32_t handle_result;  /* what handle() returned */
    uint32_t aborted;       /* 1: the response was cut after commit (RESP-ERR-2) */
    uint32_t continue_sent; /* 1: "100 Continue" would have gone out */
    uint32_t keep_alive;    /* 1: the connection would stay open */
    uint32_t informational; /* count of 1xx responses sent before the final one */
    uint32_t framing;       /* 0 no body, 1 length, 2 chunked, 3 close, 4 stream */
    uint32_t reached_app;   /* 0: the server answered by itself (4xx) */
} cwsgi_test_response;

/**
 * Loads `path` (an app.so), runs the handshake, init and worker_start(1).
 * @param opts options or NULL for defaults.
 * @param err receives a one-line reason on failure (may be NULL).
 * @return a host, or NULL on failure. Ownership: close with cwsgi_testhost_close.
 * Threads: one thread at a time.
 */
CWSGI_TESTHOST_API cwsgi_testhost *cwsgi_testhost_open(const char *path, const cwsgi_testhost_options *opts, char *err,
                                                       size_t errlen);

/** Same, for an app linked into the test program (pass its entry function). */
CWSGI_TESTHOST_API cwsgi_testhost *cwsgi_testhost_open_entry(cwsgi_entry_fn entry, const cwsgi_testhost_options *opts,
                                                             char *err, size_t errlen);

/**
 * Runs one request through the app and returns the response.
 * @return CWSGI_OK and *out set, or CWSGI_E_INVAL (bad arguments).
 * Ownership: *out is the caller's; free it with cwsgi_test_response_free.
 */
CWSGI_TESTHOST_API int32_t cwsgi_testhost_request(cwsgi_testhost *host, const cwsgi_test_request *req,
                                                  cwsgi_test_response **out);

/** Shorthand for a GET of `target`; NULL on failure. Free with cwsgi_test_response_free. */
CWSGI_TESTHOST_API cwsgi_test_response *cwsgi_testhost_get(cwsgi_testhost *host, const char *target);

/** The first response header named `name` (case-insensitive), or NULL. Borrowed from resp. */
CWSGI_TESTHOST_API const char *cwsgi_test_response_header(const cwsgi_test_response *resp, const char *name);

/** Frees a response (NULL is fine). */
CWSGI_TESTHOST_API void cwsgi_test_response_free(cwsgi_test_response *resp);

/** Runs worker_stop and destroy, and frees the host (NULL is fine). */
CWSGI_TESTHOST_API void cwsgi_testhost_close(cwsgi_testhost *host);

/** The description --check prints (name, ABI, thread-safety, caps). Borrowed from host. */
CWSGI_TESTHOST_API const char *cwsgi_testhost_describe(const cwsgi_testhost *host);

#ifdef __cplusplus
}
#endif

#endif /* CWSGI_TESTHOST_H */
