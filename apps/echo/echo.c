/*
 * echo: streams the request body back, in C. It shows the input and output streams working
 * together in bounded memory: the body is read in 64 KiB pieces (api->read returns 0 at the
 * end, for Content-Length and chunked bodies alike: INPUT-READ-1/2) and each piece is written
 * at once (api->write blocks for backpressure: RESP-BODY-2). The piece buffer comes from the
 * request's arena (MEM-ARENA-1), so nothing needs freeing. The request's Content-Type is
 * echoed; when the client declared a Content-Length, the response declares the same, otherwise
 * the server frames it (chunked on HTTP/1.1).
 * A read error before any byte was written is returned as is, so the server answers it (413 for
 * a body over the limit); after that, the response is aborted (RESP-ERR-2).
 * It blocks only inside read and write, so it declares CWSGI_APP_COOPERATIVE (THR-5).
 */
#include <cwsgi.h>

#include <stdio.h>

#define ECHO_PIECE ((size_t)64 * 1024)

/* The server's table: set once by echo_init, read-only afterwards. */
static const cwsgi_server_api *g_api;

/* Keeps the server's table. Returns CWSGI_OK. Threads: the loader's thread. */
static int32_t echo_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    g_api = api;
    *app_state = NULL;
    return CWSGI_OK;
}

/*
 * Copies the request body to the response.
 * Returns: CWSGI_OK; CWSGI_E_NOMEM without a piece buffer; otherwise the code of the read or
 * write that failed. Threads: any request thread, concurrently (CWSGI_THREADS_SAFE).
 */
static int32_t echo_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    cwsgi_header headers[2];
    size_t n = 0;
    cwsgi_str type;
    if (g_api->header_find(req, "content-type", 0, &type) == CWSGI_OK) {
        headers[n++] = (cwsgi_header){"Content-Type", 12, type.ptr, type.len};
    }
    cwsgi_request_info info = {.struct_size = sizeof info};
    char len[24];
    if (g_api->request_info(req, &info) == CWSGI_OK && info.content_length >= 0) {
        int len_n = snprintf(len, sizeof len, "%lld", (long long)info.content_length);
        headers[n++] = (cwsgi_header){"Content-Length", 14, len, (size_t)len_n};
    }
    /* start_response sends nothing yet (RESP-START-2), so a failed read below can still
     * become the server's own answer. */
    int32_t rc = g_api->start_response(req, 200, NULL, headers, n, 0);
    if (rc != CWSGI_OK) {
        return rc;
    }
    char *piece = g_api->alloc(req, ECHO_PIECE);
    if (piece == NULL) {
        return CWSGI_E_NOMEM;
    }
    for (;;) {
        int64_t got = g_api->read(req, piece, ECHO_PIECE);
        if (got < 0) {
            return (int32_t)got;
        }
        if (got == 0) {
            return CWSGI_OK;
        }
        rc = g_api->write(req, piece, (size_t)got);
        if (rc != CWSGI_OK) {
            return rc;
        }
    }
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* flags need 1.1 (ABI-STRUCT-5) */
    .name = "echo",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = echo_init,
    .handle = echo_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
