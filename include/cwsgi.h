/*
 * cwsgi.h: the CWSGI 1.x application binary interface, the whole of it.
 *
 * CWSGI is to C and C++ what WSGI (PEP 3333) is to Python: an application is compiled once
 * into a shared object (app.so) that exports one symbol, cwsgi_app_entry, and any compliant
 * server ("adapter") can load and serve it. The server hands the application a table of
 * function pointers (cwsgi_server_api), so the application links against nothing from any
 * server, and a middleware can wrap every call by presenting a wrapped table.
 *
 * The normative text is spec/ (rule IDs such as RESP-START-3 are cited below). This header is
 * C99 and C++ clean, includes only <stddef.h> and <stdint.h>, and its structs obey the ABI
 * rules of spec/abi.md: every struct that crosses the boundary starts with its size, tables
 * and structs are append-only, fixed-width integers only (no enum, bool, bitfield or long),
 * strings are (pointer, length) and also NUL-terminated.
 *
 * Compatibility (ABI-VER-1..5): an app built against 1.N loads into every 1.M server with
 * M >= N. The app states the minor it needs in its descriptor; the server refuses to load an
 * app whose major differs or whose minor is newer than its own, with a message that says so.
 */
#ifndef CWSGI_H
#define CWSGI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Versions                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/** ABI major: a change here means old apps no longer load (ABI-VER-1). */
#define CWSGI_ABI_MAJOR 1
/** ABI minor: grows when the table or a struct grows at its end (ABI-VER-2). */
#define CWSGI_ABI_MINOR 2
/** Release version of this CWSGI distribution (header, core, adapters, tools). */
#define CWSGI_VERSION_MAJOR 1
#define CWSGI_VERSION_MINOR 2
#define CWSGI_VERSION_PATCH 0
#define CWSGI_VERSION_STRING "1.2.0"
/** One integer for comparisons: 0xMMmmpp. */
#define CWSGI_VERSION_HEX ((CWSGI_VERSION_MAJOR << 16) | (CWSGI_VERSION_MINOR << 8) | CWSGI_VERSION_PATCH)

/* ---------------------------------------------------------------------------------------- */
/* Visibility                                                                                */
/* ---------------------------------------------------------------------------------------- */

/** Marks the one symbol an app exports; build apps with -fvisibility=hidden (ABI-LOAD-1). */
#if defined(_WIN32)
#define CWSGI_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define CWSGI_EXPORT __attribute__((visibility("default")))
#else
#define CWSGI_EXPORT
#endif

/* ---------------------------------------------------------------------------------------- */
/* Status codes (ABI-ERR-1): 0 is success, negative values are errors, small positive        */
/* values are successful outcomes worth telling apart. The list is append-only.              */
/* ---------------------------------------------------------------------------------------- */

/* X(NAME, value, message) */
#define CWSGI_STATUS_MAP(X)                                                                  \
    X(OK, 0, "success")                                                                      \
    X(DROPPED, 1, "accepted but not sent: the protocol or peer cannot carry it")             \
    X(E_INVAL, -1, "invalid argument")                                                       \
    X(E_STATE, -2, "call not allowed in the request's current state")                        \
    X(E_COMMITTED, -3, "response already committed: headers are on the wire")                \
    X(E_HEADER, -4, "invalid header name or value (not a token, or CR, LF or NUL in value)") \
    X(E_FORBIDDEN, -5, "header is hop-by-hop or owned by the server")                        \
    X(E_DISCONNECTED, -6, "client disconnected")                                             \
    X(E_LENGTH, -7, "body length does not match the declared Content-Length")                \
    X(E_NOMEM, -8, "out of memory")                                                          \
    X(E_IO, -9, "input/output error")                                                        \
    X(E_UNSUPPORTED, -10, "not supported by this server or for this request")                \
    X(E_ABI, -11, "ABI version or struct size mismatch")                                     \
    X(E_BODY, -12, "request body malformed, truncated or over the server's limit")           \
    X(E_TIMEOUT, -13, "timed out")                                                           \
    X(E_NOTFOUND, -14, "no such key, index or extension")                                    \
    X(E_APP, -15, "application error")                                                       \
    X(E_ABORTED, -16, "response aborted after commit")                                       \
    X(E_SHUTDOWN, -17, "server is shutting down")                                            \
    X(E_STATUS, -18, "invalid status code for this call")

#define CWSGI__STATUS_ENUM(name, value, msg) CWSGI_##name = (value),
/** Status codes. Values are part of the ABI; the type that carries them is int32_t. */
enum cwsgi_status_code { CWSGI_STATUS_MAP(CWSGI__STATUS_ENUM) CWSGI__STATUS_END = 2 };
#undef CWSGI__STATUS_ENUM

/**
 * Describes a status code in one English sentence fragment.
 * @param code any value; unknown codes get "unknown status code".
 * @return a static string; never NULL.
 * Ownership: static storage. Threads: any thread. Since: 1.0. Rule: ABI-ERR-2.
 * (static inline so that apps need no server symbol to call it.)
 */
static inline const char *cwsgi_strerror(int32_t code)
{
#define CWSGI__STATUS_CASE(name, value, msg) \
    case (value): return (msg);
    switch (code) {
        CWSGI_STATUS_MAP(CWSGI__STATUS_CASE)
    default: return "unknown status code";
    }
#undef CWSGI__STATUS_CASE
}

/**
 * Names a status code ("CWSGI_E_INVAL"), for logs and test output.
 * @return a static string; "CWSGI_UNKNOWN" for unknown codes.
 * Ownership: static storage. Threads: any thread. Since: 1.0. Rule: ABI-ERR-2.
 */
static inline const char *cwsgi_err_name(int32_t code)
{
#define CWSGI__STATUS_NAME(name, value, msg) \
    case (value): return "CWSGI_" #name;
    switch (code) {
        CWSGI_STATUS_MAP(CWSGI__STATUS_NAME)
    default: return "CWSGI_UNKNOWN";
    }
#undef CWSGI__STATUS_NAME
}

/**
 * The reason phrase of an HTTP status code ("Not Found"), for a status line or an error body.
 * @param status an HTTP status code; codes with no registered phrase get "Unknown".
 * @return a static string; never NULL.
 * Covers every code of the IANA HTTP Status Code Registry that RFC 9110 maintains, with the
 * phrases RFC 9110 gives (413 "Content Too Large", 422 "Unprocessable Content"), the codes other
 * RFCs register there (102, 103, 207, 208, 226, 423-425, 428, 429, 431, 451, 506-508, 510,
 * 511), and 418 "I'm a teapot" (RFC 2324; registered as unused, kept because apps send it).
 * The server core and cwsgi.hpp both use this table, so a status has one phrase everywhere.
 * Ownership: static storage. Threads: any thread. Since: 1.1.
 * (static inline so that apps need no server symbol to call it.)
 */
static inline const char *cwsgi_reason_phrase(uint32_t status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Constants                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/** Capabilities (uint64_t bit set). The server offers some; an app may require some. */
#define CWSGI_CAP_SENDFILE UINT64_C(0x1)         /* send_file is zero-copy (else a read loop)  */
#define CWSGI_CAP_INFORMATIONAL UINT64_C(0x2)    /* send_informational puts 1xx on the wire    */
#define CWSGI_CAP_REQUEST_TRAILERS UINT64_C(0x4) /* the cwsgi.request_trailers extension      */
#define CWSGI_CAP_DISCONNECT UINT64_C(0x8)       /* is_disconnected sees a peer close early    */
#define CWSGI_CAP_HTTP2 UINT64_C(0x10)           /* requests may arrive over HTTP/2            */
#define CWSGI_CAP_TLS UINT64_C(0x20)             /* requests may arrive over TLS               */
#define CWSGI_CAP_PIPELINING UINT64_C(0x40)      /* HTTP/1.1 pipelined requests are answered   */
#define CWSGI_CAP_MULTIPROCESS UINT64_C(0x80)    /* the app may run in several processes       */
#define CWSGI_CAP_THREADS UINT64_C(0x100)        /* handle may run on several threads at once  */

/** Thread-safety an app declares (ABI-LOAD-6). */
#define CWSGI_THREADS_SERIAL UINT32_C(0) /* server calls handle from one thread at a time */
#define CWSGI_THREADS_SAFE UINT32_C(1)   /* handle may run concurrently on many threads   */

/**
 * Execution flags an app declares in cwsgi_app_desc.flags (since 1.1, THR-5).
 * CWSGI_APP_COOPERATIVE is the cooperative promise: handle() and on_request_end block only
 * inside calls of the server's table (read, write, send_file, finish, wait_fd), never in their
 * own I/O, sleeps or locks held across those calls. The server may then run handle() on a
 * fiber on its event-loop thread, switching away whenever one of those calls must wait.
 */
#define CWSGI_APP_COOPERATIVE UINT32_C(0x1)

/** How the server runs handle() (cwsgi_server_info.execution, since 1.1; THR-5). */
#define CWSGI_EXEC_THREADS UINT32_C(0)     /* on a thread pool; every 1.0 server */
#define CWSGI_EXEC_COOPERATIVE UINT32_C(1) /* on fibers on the event-loop threads */

/** Events for wait_fd (since 1.1). */
#define CWSGI_WAIT_READ UINT32_C(0x1)  /* the fd is readable (or at end of stream, or failed) */
#define CWSGI_WAIT_WRITE UINT32_C(0x2) /* the fd is writable (or failed) */

/** Flags for start_response. */
#define CWSGI_RESPONSE_REPLACE UINT32_C(0x1) /* WSGI exc_info: replace an uncommitted response */

/** Log levels (Python's numbers). */
#define CWSGI_LOG_DEBUG UINT32_C(10)
#define CWSGI_LOG_INFO UINT32_C(20)
#define CWSGI_LOG_WARNING UINT32_C(30)
#define CWSGI_LOG_ERROR UINT32_C(40)
#define CWSGI_LOG_CRITICAL UINT32_C(50)

/** Content length of a request whose body length is not known in advance (chunked, HTTP/2). */
#define CWSGI_LENGTH_UNKNOWN INT64_C(-1)

/** Maximum length of the message an app's init may leave in errbuf, NUL included. */
#define CWSGI_ERRBUF_SIZE 512

/* ---------------------------------------------------------------------------------------- */
/* Types                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/** Opaque handle for one request; valid from handle() until on_request_end returns. */
typedef struct cwsgi_request cwsgi_request;

/** A byte string: ptr[len] is always NUL, and ptr is never NULL (an absent string is ""). */
typedef struct cwsgi_str {
    const char *ptr;
    size_t len;
} cwsgi_str;

/** One header field given by the app. Names are tokens (any case); values have no CR/LF/NUL. */
typedef struct cwsgi_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} cwsgi_header;

/**
 * Facts about the request, in one struct. The caller sets struct_size to sizeof on its side;
 * the server fills what both sides know and zero-fills the rest (ABI-STRUCT-2).
 * All strings are borrowed from the request and live until on_request_end returns.
 */
typedef struct cwsgi_request_info {
    uint32_t struct_size;
    uint32_t http_major;    /* 1 or 2 */
    uint32_t http_minor;    /* 0 or 1 for HTTP/1.x, 0 for HTTP/2 */
    uint32_t is_tls;        /* 1 when the connection is TLS */
    int64_t content_length; /* bytes, or CWSGI_LENGTH_UNKNOWN */
    cwsgi_str method;       /* REQUEST_METHOD, as sent (case kept) */
    cwsgi_str target;       /* REQUEST_URI: the raw request-target */
    cwsgi_str raw_path;     /* the path part of the target, still percent-encoded */
    cwsgi_str script_name;  /* SCRIPT_NAME (decoded) */
    cwsgi_str path_info;    /* PATH_INFO (decoded) */
    cwsgi_str query_string; /* QUERY_STRING (raw, without '?') */
    cwsgi_str scheme;       /* cwsgi.url_scheme: "http" or "https" */
    cwsgi_str protocol;     /* SERVER_PROTOCOL: "HTTP/1.0", "HTTP/1.1" or "HTTP/2" */
    cwsgi_str server_name;  /* SERVER_NAME */
    cwsgi_str server_port;  /* SERVER_PORT (digits) */
    cwsgi_str remote_addr;  /* REMOTE_ADDR ("" for a unix socket peer) */
    cwsgi_str remote_port;  /* REMOTE_PORT ("" for a unix socket peer) */
    cwsgi_str local_addr;   /* cwsgi.local_addr (socket path for unix sockets) */
    cwsgi_str local_port;   /* cwsgi.local_port */
    uint64_t request_id;    /* unique in this process, increasing */
} cwsgi_request_info;

/**
 * Facts about the server, for the app's init and worker_start. Same size rule as above.
 */
typedef struct cwsgi_server_info {
    uint32_t struct_size;
    uint32_t worker_id;          /* 0 in the master/loader; 1..N in workers */
    uint32_t workers;            /* worker processes configured (1 without an arbiter) */
    uint32_t threads;            /* request threads per worker */
    int64_t limit_request_body;  /* bytes; -1 when unlimited */
    uint32_t limit_request_line; /* bytes */
    uint32_t limit_request_fields;
    uint32_t limit_request_field_size;
    uint32_t graceful_timeout_ms;
    cwsgi_str adapter;         /* "microhttpd", "h2o", "forking", "testhost" */
    cwsgi_str server_software; /* e.g. "cwsgi-serve/1.0.0 (microhttpd)" */
    /* Since 1.1 (a 1.0 server leaves these zero: threads mode). */
    uint32_t execution;    /* CWSGI_EXEC_THREADS or CWSGI_EXEC_COOPERATIVE */
    uint32_t loop_threads; /* event-loop threads per worker (0: not an event-loop engine) */
    uint64_t stack_size;   /* bytes of each fiber stack in cooperative mode, else 0 */
} cwsgi_server_info;

typedef struct cwsgi_server_api cwsgi_server_api;

/**
 * The table of functions the server hands the app. Append-only (ABI-STRUCT-3): a field is
 * present when offsetof(field) < struct_size. Every function is safe to call with a request
 * handle in any state: misuse returns a negative code and is logged, never corrupts memory
 * (RESP-STATE-1). Unless a function says otherwise, calls on one request must come from the
 * execution context running that request's handle(): its thread, or its fiber in cooperative
 * mode (THR-2). In cooperative mode read, write, send_file, finish and wait_fd may suspend the
 * calling fiber until they can go on; no other function ever suspends (THR-5).
 */
struct cwsgi_server_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint64_t capabilities; /* CWSGI_CAP_* offered by this server */

    /* --- environ (ENV-*) ---------------------------------------------------------------- */

    /**
     * Looks up one environ value by key ("PATH_INFO", "HTTP_USER_AGENT", "cwsgi.url_scheme").
     * @param key NUL-terminated key, case-sensitive.
     * @param out receives the value; unchanged on error.
     * @return CWSGI_OK, CWSGI_E_NOTFOUND when the key is absent, CWSGI_E_INVAL on NULL args.
     * Ownership: out is borrowed until on_request_end returns. Since: 1.0. Rule: ENV-KEYS-1.
     */
    int32_t (*environ_get)(cwsgi_request *req, const char *key, cwsgi_str *out);

    /**
     * Iterates the environ: entry `index` in a stable order (the spec's key order, then HTTP_*).
     * @return CWSGI_OK, or CWSGI_E_NOTFOUND when index >= the number of entries.
     * Ownership: borrowed until on_request_end returns. Since: 1.0. Rule: ENV-KEYS-2.
     */
    int32_t (*environ_at)(cwsgi_request *req, size_t index, cwsgi_str *key, cwsgi_str *value);

    /**
     * Reads request header `index` in arrival order, duplicates kept, names lowercased,
     * HTTP/2 pseudo-headers removed (":authority" appears as "host").
     * @return CWSGI_OK, or CWSGI_E_NOTFOUND when index >= the number of headers.
     * Ownership: borrowed until on_request_end returns. Since: 1.0. Rule: ENV-HDR-1.
     */
    int32_t (*header_at)(cwsgi_request *req, size_t index, cwsgi_str *name, cwsgi_str *value);

    /**
     * Finds the nth (0-based) request header whose name equals `name` ASCII-case-insensitively.
     * @return CWSGI_OK or CWSGI_E_NOTFOUND. Ownership: borrowed until on_request_end returns.
     * Since: 1.0. Rule: ENV-HDR-2.
     */
    int32_t (*header_find)(cwsgi_request *req, const char *name, size_t nth, cwsgi_str *value);

    /**
     * Fills `info` (caller sets info->struct_size first).
     * @return CWSGI_OK, CWSGI_E_INVAL for NULL or a struct_size below 8.
     * Ownership: strings borrowed until on_request_end returns. Since: 1.0. Rule: ENV-INFO-1.
     */
    int32_t (*request_info)(cwsgi_request *req, cwsgi_request_info *info);

    /* --- input (INPUT-*) ---------------------------------------------------------------- */

    /**
     * Reads request body bytes, blocking until at least one byte, the end, or an error.
     * The first call sends "100 Continue" when the client asked for it (INPUT-EXPECT-1).
     * @return bytes read (1..cap), 0 at the end of the body (sticky, INPUT-READ-2), or a
     *         negative code: CWSGI_E_BODY (malformed, truncated, over the limit),
     *         CWSGI_E_DISCONNECTED, CWSGI_E_TIMEOUT. Never returns bytes past the body.
     * Ownership: buf is the caller's. Since: 1.0. Rule: INPUT-READ-1..4.
     */
    int64_t (*read)(cwsgi_request *req, void *buf, size_t cap);

    /* --- response (RESP-*) -------------------------------------------------------------- */

    /**
     * Sets the response status and headers. Nothing is sent until the first body byte or
     * finish (RESP-START-2). A second call needs CWSGI_RESPONSE_REPLACE and succeeds only
     * while uncommitted (RESP-START-4): this is WSGI's exc_info, without exceptions.
     * @param status 200..599 (RESP-START-1); 1xx go through send_informational.
     * @param reason reason phrase or NULL for the standard one; no CR/LF/NUL.
     * @param headers array of n fields; copied before return.
     * @return CWSGI_OK; CWSGI_E_STATUS; CWSGI_E_HEADER (RESP-HDR-1/2); CWSGI_E_FORBIDDEN for
     *         hop-by-hop and server-owned fields (RESP-HDR-3); CWSGI_E_STATE for a second call
     *         without REPLACE; CWSGI_E_COMMITTED after commit. On error nothing changes.
     * Ownership: everything is copied. Since: 1.0.
     */
    int32_t (*start_response)(cwsgi_request *req, uint32_t status, const char *reason, const cwsgi_header *headers,
                              size_t n, uint32_t flags);

    /**
     * Sends body bytes, blocking until the server has sent or queued them within its bounded
     * buffer (backpressure, RESP-BODY-2). The first call commits the response. A zero-length
     * write is legal: it commits and sends nothing.
     * @return CWSGI_OK; CWSGI_E_STATE before start_response or after finish;
     *         CWSGI_E_LENGTH when the bytes would pass a declared Content-Length (nothing of
     *         this call is sent; RESP-LEN-2); CWSGI_E_DISCONNECTED; CWSGI_E_IO.
     * Ownership: data is the caller's and may be reused once this returns. Since: 1.0.
     */
    int32_t (*write)(cwsgi_request *req, const void *data, size_t len);

    /**
     * Sends `count` bytes of file `fd` from `offset`, zero-copy when the server has
     * CWSGI_CAP_SENDFILE, otherwise by a read loop with the same result (RESP-FILE-1/2).
     * @param count bytes, or -1 for "to the end of the file".
     * @return as write; CWSGI_E_INVAL for a bad fd or range; CWSGI_E_IO when the file is
     *         shorter than promised after commit (the response is then aborted).
     * Ownership: fd stays the app's; the server dup()s it if it needs it after returning.
     * Since: 1.0.
     */
    int32_t (*send_file)(cwsgi_request *req, int fd, int64_t offset, int64_t count);

    /**
     * Ends the response: commits it if needed, sends the last bytes and the framing end.
     * Implied when handle returns CWSGI_OK without it. After finish, only environ/header/
     * info/log/alloc calls are allowed (RESP-STATE-3).
     * @return CWSGI_OK; CWSGI_E_STATE if no start_response was made or finish was called
     *         already; CWSGI_E_LENGTH when fewer bytes than a declared Content-Length were
     *         written (the response is aborted: RESP-LEN-3); CWSGI_E_DISCONNECTED.
     * Ownership: nothing changes hands. Since: 1.0.
     */
    int32_t (*finish)(cwsgi_request *req);

    /**
     * Sends an informational (1xx) response such as 103 Early Hints before start_response.
     * @param status 102..199 except 101.
     * @return CWSGI_OK when sent; CWSGI_DROPPED when the protocol, peer or server cannot carry
     *         it (HTTP/1.0, or no CWSGI_CAP_INFORMATIONAL); CWSGI_E_STATUS; CWSGI_E_HEADER;
     *         CWSGI_E_STATE after start_response. Ownership: copied. Since: 1.0.
     *         Rule: RESP-INFO-1..3.
     */
    int32_t (*send_informational)(cwsgi_request *req, uint32_t status, const cwsgi_header *headers, size_t n);

    /* --- connection, memory, logging ------------------------------------------------------ */

    /**
     * Tells whether the client has gone away.
     * @return 1 disconnected, 0 connected (or not known yet without CWSGI_CAP_DISCONNECT).
     * Ownership: nothing changes hands.
     * Threads: any thread, until on_request_end returns. Since: 1.0. Rule: LIFE-DISC-1.
     */
    int32_t (*is_disconnected)(cwsgi_request *req);

    /**
     * Allocates `size` bytes from the request's arena, aligned for any type, freed when
     * on_request_end returns (MEM-ARENA-1). NULL on overflow or out of memory.
     * Ownership: borrowed until on_request_end returns; never free() it.
     * Threads: the request's thread. Since: 1.0.
     */
    void *(*alloc)(cwsgi_request *req, size_t size);

    /**
     * Writes one line to the error log (the errors stream, LOG-ERR-1).
     * @param req the request the message is about, or NULL.
     * @param level a CWSGI_LOG_* level; messages below the server's level are dropped.
     * @param msg bytes (need not be NUL-terminated); newlines are escaped by the server.
     * @return CWSGI_OK or CWSGI_E_INVAL. Ownership: msg is copied before return.
     * Threads: any thread. Since: 1.0.
     */
    int32_t (*log)(cwsgi_request *req, uint32_t level, const char *msg, size_t len);

    /**
     * Stores and returns a per-request pointer for the app (e.g. its context object).
     * Ownership: the pointer stays the app's; the server never reads or frees what it points to.
     * Threads: the request's thread and on_request_end. Since: 1.0. Rule: MEM-USER-1.
     */
    void (*set_user_data)(cwsgi_request *req, void *data);
    void *(*get_user_data)(cwsgi_request *req);

    /**
     * Fills `info` with the server's facts (caller sets struct_size).
     * @return CWSGI_OK or CWSGI_E_INVAL. Ownership: strings are static for the process.
     * Threads: any. Since: 1.0. Rule: LIFE-INFO-1.
     */
    int32_t (*server_info)(cwsgi_server_info *info);

    /**
     * Tells whether the server has begun a graceful stop; long streams should end soon.
     * @return 1 or 0. Ownership: nothing changes hands. Threads: any. Since: 1.0.
     * Rule: LIFE-STOP-3.
     */
    int32_t (*is_shutting_down)(void);

    /**
     * Looks up a named extension ("cwsgi.request_trailers") of at least `min_version`.
     * @return a pointer to the extension's table (its first field is uint32_t struct_size),
     *         or NULL when absent: the app falls back (EXT-1).
     * Ownership: the table is static for the process. Threads: any. Since: 1.0.
     */
    const void *(*get_extension)(const char *name, uint32_t min_version);

    /* --- since 1.1 ------------------------------------------------------------------------ */

    /**
     * Waits until the app's own descriptor `fd` (an upstream socket, a database client's
     * non-blocking fd) is ready for `events`, through the server: in cooperative mode the
     * request's fiber yields to the event loop meanwhile; in threads mode the calling thread
     * polls. This is how a cooperative app talks to other services without breaking its
     * promise (THR-5).
     * @param fd a descriptor the app owns; the server never reads, writes or closes it. -1
     *        (with events 0) waits for the timeout alone: a sleep that keeps the promise.
     * @param events CWSGI_WAIT_READ and/or CWSGI_WAIT_WRITE (at least one), or 0 with fd -1.
     * @param timeout_ms milliseconds to wait at most; -1 waits without a limit (the graceful
     *        deadline still ends the wait).
     * @return the ready events (a non-empty subset of `events`; an error or hang-up on the fd
     *         reports every requested event, so the app's next call sees the failure),
     *         CWSGI_E_TIMEOUT, CWSGI_E_SHUTDOWN when the graceful deadline passed while waiting
     *         (LIFE-STOP-5), CWSGI_E_DISCONNECTED once the client's connection is gone (a
     *         cooperative server may end a wait in progress with it), CWSGI_E_INVAL for an fd below -1, empty or
     * unknown events, a timeout below -1, or a stale handle. It may be called in any response state. Ownership: nothing
     * changes hands. Threads: the request's thread. Since: 1.1. Rule: THR-6.
     */
    int32_t (*wait_fd)(cwsgi_request *req, int fd, uint32_t events, int32_t timeout_ms);

    /* --- since 1.2 ------------------------------------------------------------------------ */

    /**
     * Looks up one of the app's own settings: what the operator wrote in the [app] table of
     * cwsgi-serve's -c file (nested tables joined with dots: "model.path"), or what a test
     * gave the test host. PasteDeploy's local_conf, for a C ABI.
     * @param key NUL-terminated, case-sensitive, compared whole ("model.path", not "path").
     * @param value receives the value as text: a TOML string without its quotes, any other
     *        value in its TOML spelling ("42", "true", "1.5", "[1, 2]"); unchanged on error.
     * @return CWSGI_OK; CWSGI_E_NOTFOUND when the operator set no such key (a server started
     *         without settings has none); CWSGI_E_INVAL for a NULL key or value.
     * Ownership: value is borrowed for the life of the process (in the test host, until
     * cwsgi_testhost_close); a process's settings never change (LIFE-SET-3).
     * Threads: any, from init on. Since: 1.2. Rule: LIFE-SET-1.
     */
    int32_t (*setting_get)(const char *key, cwsgi_str *value);

    /**
     * Iterates the app's settings: setting `index`, in the order the operator wrote them.
     * @return CWSGI_OK, CWSGI_E_NOTFOUND when index >= the number of settings, CWSGI_E_INVAL
     *         for a NULL key or value.
     * Ownership: as setting_get. Threads: any, from init on. Since: 1.2. Rule: LIFE-SET-1.
     */
    int32_t (*setting_at)(size_t index, cwsgi_str *key, cwsgi_str *value);
};

/**
 * Extension "cwsgi.request_trailers", version 1: trailer fields of a chunked (or HTTP/2)
 * request body, available once read() has returned 0 (EXT-TRAILERS-1).
 */
#define CWSGI_EXT_REQUEST_TRAILERS "cwsgi.request_trailers"
typedef struct cwsgi_ext_request_trailers {
    uint32_t struct_size;
    uint32_t version; /* 1 */
    /** Trailer `index` (names lowercased); CWSGI_E_STATE before the end of the body,
     *  CWSGI_E_NOTFOUND past the last one. Ownership: borrowed until on_request_end. */
    int32_t (*trailer_at)(cwsgi_request *req, size_t index, cwsgi_str *name, cwsgi_str *value);
} cwsgi_ext_request_trailers;

/**
 * What the app declares about itself. The app returns a pointer to a descriptor it owns
 * (normally a static const) and keeps it valid until the server unloads it.
 * struct_size = sizeof(cwsgi_app_desc) as the app was compiled (ABI-STRUCT-1).
 * Every callback except handle may be NULL.
 */
typedef struct cwsgi_app_desc {
    uint32_t struct_size;
    uint16_t abi_major;                     /* must equal the server's major: CWSGI_ABI_MAJOR */
    uint16_t abi_minor;                     /* the lowest server minor this app works with */
    const char *name;                       /* short name, for logs and --check */
    const char *version;                    /* the app's own version string, or NULL */
    uint32_t thread_safety;                 /* CWSGI_THREADS_SERIAL or CWSGI_THREADS_SAFE */
    uint32_t reserved;                      /* must be 0 */
    uint64_t required_caps;                 /* load fails unless the server offers all of these */
    const char *const *required_extensions; /* NULL-terminated list of names, or NULL */

    /**
     * Called once in each process that loads the app (LIFE-LOAD-1): in each worker after the
     * fork by default, in the master before any fork with --preload. The place to read the
     * app's configuration: its settings (setting_get, since 1.2; LIFE-SET-1) and environment
     * variables. Open nothing here that must not be shared across processes (sockets,
     * threads): use worker_start.
     * @param api the server's table; valid until the process exits.
     * @param app_state receives the pointer passed to every other callback.
     * @param errbuf on failure, a one-line reason (NUL-terminated, at most errlen bytes).
     * @return CWSGI_OK, or a negative code: the server then refuses to start (LIFE-LOAD-2).
     */
    int32_t (*init)(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen);

    /**
     * Called in each worker process after fork, before its first request (LIFE-WORKER-1).
     * @return CWSGI_OK, or a negative code: the worker exits with a boot error
     *         and the server does not respawn it in a loop (LIFE-WORKER-2).
     */
    int32_t (*worker_start)(void *app_state, uint32_t worker_id, char *errbuf, size_t errlen);

    /** Called in each worker after its in-flight requests drained or the graceful deadline
     *  passed (LIFE-WORKER-3). */
    void (*worker_stop)(void *app_state, uint32_t worker_id);

    /** Called once when the server will not call the app again (LIFE-LOAD-3). */
    void (*destroy)(void *app_state);

    /**
     * The application callable (WSGI's app(environ, start_response)). Runs on a server thread
     * and may block there; in cooperative mode (CWSGI_APP_COOPERATIVE, since 1.1) it runs on a
     * fiber on an event-loop thread and may block only inside the server's calls. Before returning it calls
     * start_response and writes the body; finish is implied by a CWSGI_OK return (RESP-END-1). A negative return means
     * failure: before commit the server answers 500 (RESP-ERR-1); after commit it aborts the response on the wire as
     * RESP-ERR-2 says. The app must not throw C++ exceptions or longjmp out.
     */
    int32_t (*handle)(void *app_state, cwsgi_request *req);

    /**
     * Called exactly once for every request that reached handle, after handle returned and
     * the response is done or failed, on every path including client disconnect
     * (LIFE-END-1). Request data is still readable; nothing can be sent.
     * @param outcome CWSGI_OK (response fully handed to the network), CWSGI_E_DISCONNECTED,
     *        CWSGI_E_ABORTED (the response was cut after commit) or CWSGI_E_APP (500 sent).
     */
    void (*on_request_end)(void *app_state, cwsgi_request *req, int32_t outcome);

    /* Since 1.1. An app that sets any of these declares abi_minor >= 1: a 1.0 server refuses
     * a descriptor with non-zero bytes past its own size (ABI-STRUCT-4). */
    uint32_t flags;     /* CWSGI_APP_* (CWSGI_APP_COOPERATIVE) */
    uint32_t reserved2; /* must be 0 */
} cwsgi_app_desc;

/**
 * The entry symbol every app exports (ABI-LOAD-1). It must have no side effects: it only
 * hands back the descriptor. The server checks the descriptor (ABI-LOAD-3..6) before it
 * calls desc->init.
 * @param api the server's table (the app may refuse it, e.g. a too-old minor, by returning
 *        CWSGI_E_ABI).
 * @param desc_out receives the app's descriptor.
 * @return CWSGI_OK or a negative code.
 */
typedef int32_t (*cwsgi_entry_fn)(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out);

#define CWSGI_ENTRY_SYMBOL "cwsgi_app_entry"

/** Declaration of the entry; define it in exactly one file of the app. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out);

/**
 * True when `api` has the table field `member` (ABI-STRUCT-3): use before calling a function
 * added after 1.0.
 */
#define CWSGI_API_HAS(api, member) \
    ((api) != NULL && (api)->struct_size >= offsetof(cwsgi_server_api, member) + sizeof((api)->member))

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CWSGI_H */
