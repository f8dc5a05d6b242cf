/*
 * stream: sends a long body as it is produced, in C. The query picks the shape:
 * n=N chunks (default 10, at most 100000) of m=M bytes (default 1024, at most 1 MiB), with an
 * optional delay_ms=D pause between chunks (at most 10000). No Content-Length is declared, so
 * the server frames the body (chunked on HTTP/1.1, close-delimited on HTTP/1.0, an HTTP/2
 * stream). Chunk i holds M copies of the letter 'a' + i % 26, so a client can check order.
 * It shows how a long response ends early without lying about it: the app checks
 * is_disconnected (LIFE-DISC-1) and is_shutting_down (LIFE-STOP-3) before each chunk and stops
 * when a write fails; in each case it returns an error, so the server aborts the response
 * (RESP-ERR-2) instead of ending it cleanly as if it were whole. Its pause is a wait_fd on no
 * fd, so it blocks only inside CWSGI calls and declares CWSGI_APP_COOPERATIVE (THR-5).
 * A malformed or out-of-range query is answered 400 with a one-line reason.
 */
#define _POSIX_C_SOURCE 200809L
#include <cwsgi.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define STREAM_MAX_N 100000u
#define STREAM_MAX_M (1024u * 1024u)
#define STREAM_MAX_DELAY_MS 10000u

/* The server's table: set once by stream_init, read-only afterwards. */
static const cwsgi_server_api *g_api;

/* Keeps the server's table. Returns CWSGI_OK. Threads: the loader's thread. */
static int32_t stream_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    g_api = api;
    *app_state = NULL;
    return CWSGI_OK;
}

/*
 * Finds field `name` in query string qs and parses its value as a decimal in [0, max].
 * Only digits are accepted (no sign, no spaces, no percent-encoding): the values are numbers.
 * Returns 1 with *out set, 0 when the field is absent (*out unchanged), -1 when malformed.
 * Threads: any.
 */
static int query_uint(cwsgi_str qs, const char *name, unsigned max, unsigned *out)
{
    size_t name_len = strlen(name);
    const char *p = qs.ptr;
    const char *end = qs.ptr + qs.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *field_end = amp != NULL ? amp : end;
        if ((size_t)(field_end - p) > name_len && memcmp(p, name, name_len) == 0 && p[name_len] == '=') {
            const char *v = p + name_len + 1;
            if (v == field_end) {
                return -1;
            }
            unsigned long value = 0;
            for (; v < field_end; ++v) {
                if (*v < '0' || *v > '9') {
                    return -1;
                }
                value = value * 10 + (unsigned long)(*v - '0');
                if (value > max) {
                    return -1;
                }
            }
            *out = (unsigned)value;
            return 1;
        }
        p = field_end + 1;
    }
    return 0;
}

/* Answers 400 with `msg` as text/plain. Returns the code of the first call that fails. */
static int32_t bad_request(cwsgi_request *req, const char *msg)
{
    char len[24];
    size_t msg_len = strlen(msg);
    int len_n = snprintf(len, sizeof len, "%zu", msg_len);
    const cwsgi_header headers[] = {
        {"Content-Type", 12, "text/plain; charset=utf-8", 25},
        {"Content-Length", 14, len, (size_t)len_n},
    };
    int32_t rc = g_api->start_response(req, 400, NULL, headers, 2, 0);
    return rc != CWSGI_OK ? rc : g_api->write(req, msg, msg_len);
}

/*
 * Sleeps `ms` milliseconds through the server: wait_fd on no fd (THR-6) keeps the cooperative
 * promise, and the server ends it early at the graceful deadline or when the client leaves.
 * A table without wait_fd (ABI-STRUCT-3) gets a plain nanosleep, restarted after signals.
 * Returns CWSGI_OK after the full pause, or CWSGI_E_SHUTDOWN / CWSGI_E_DISCONNECTED.
 */
static int32_t sleep_ms(cwsgi_request *req, unsigned ms)
{
    if (CWSGI_API_HAS(g_api, wait_fd)) {
        int32_t rc = g_api->wait_fd(req, -1, 0, (int32_t)ms);
        return rc == CWSGI_E_TIMEOUT ? CWSGI_OK : rc;
    }
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    return CWSGI_OK;
}

/*
 * Streams n chunks of m bytes as described at the top of this file.
 * Returns: CWSGI_OK when every chunk went out; CWSGI_E_DISCONNECTED or CWSGI_E_SHUTDOWN when it
 * stopped early; the failed call's code otherwise. Threads: any request thread, concurrently.
 */
static int32_t stream_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    cwsgi_str qs = {"", 0};
    (void)g_api->environ_get(req, "QUERY_STRING", &qs);
    unsigned n = 10;
    unsigned m = 1024;
    unsigned delay_ms = 0;
    if (query_uint(qs, "n", STREAM_MAX_N, &n) < 0) {
        return bad_request(req, "n must be a whole number from 0 to 100000\n");
    }
    if (query_uint(qs, "m", STREAM_MAX_M, &m) < 0) {
        return bad_request(req, "m must be a whole number from 0 to 1048576\n");
    }
    if (query_uint(qs, "delay_ms", STREAM_MAX_DELAY_MS, &delay_ms) < 0) {
        return bad_request(req, "delay_ms must be a whole number from 0 to 10000\n");
    }
    const cwsgi_header headers[] = {
        {"Content-Type", 12, "text/plain; charset=utf-8", 25},
        {"Cache-Control", 13, "no-store", 8},
    };
    int32_t rc = g_api->start_response(req, 200, NULL, headers, 2, 0);
    if (rc != CWSGI_OK) {
        return rc;
    }
    char *chunk = g_api->alloc(req, m > 0 ? m : 1);
    if (chunk == NULL) {
        return CWSGI_E_NOMEM;
    }
    for (unsigned i = 0; i < n; ++i) {
        if (i > 0 && delay_ms > 0 && (rc = sleep_ms(req, delay_ms)) != CWSGI_OK) {
            return rc;
        }
        if (g_api->is_disconnected(req)) {
            return CWSGI_E_DISCONNECTED;
        }
        if (g_api->is_shutting_down()) {
            return CWSGI_E_SHUTDOWN;
        }
        memset(chunk, 'a' + (int)(i % 26), m);
        rc = g_api->write(req, chunk, m);
        if (rc != CWSGI_OK) {
            return rc;
        }
    }
    return CWSGI_OK;
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* flags need 1.1 (ABI-STRUCT-5) */
    .name = "stream",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = stream_init,
    .handle = stream_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
