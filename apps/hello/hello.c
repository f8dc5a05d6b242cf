/*
 * hello: the smallest complete CWSGI app, in C. It shows the whole contract an app needs: a
 * static descriptor, the exported entry symbol, an init that keeps the server's function
 * table, and a handle() that calls start_response with a Content-Length and writes the body
 * once. Returning CWSGI_OK implies finish (RESP-END-1). The only state is the table pointer,
 * written once in init before any request, so the app declares itself thread-safe, and it
 * never blocks, so cooperative (CWSGI_APP_COOPERATIVE: it may run on fibers, THR-5).
 */
#include <cwsgi.h>

static const char k_body[] = "Hello, World!\n";
/* The body is constant, so its Content-Length is too: written once here, not formatted per
 * request (snprintf cost about 660 instructions a request, 5 % of the whole h2o request path). */
static const char k_length[] = "14";
_Static_assert(sizeof k_body - 1 == 14, "k_length must spell the length of k_body");

/* The server's table: set once by hello_init, read-only afterwards. */
static const cwsgi_server_api *g_api;

/*
 * Keeps the server's table. Returns CWSGI_OK. Threads: the loader's thread (LIFE-LOAD-1).
 */
static int32_t hello_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    g_api = api;
    *app_state = NULL;
    return CWSGI_OK;
}

/*
 * Answers every request with 200 "Hello, World!\n" as text/plain, with a Content-Length so
 * the body is not chunked.
 * Returns: CWSGI_OK, or the server's code when start_response or write fail.
 * Threads: any request thread, concurrently (CWSGI_THREADS_SAFE).
 */
static int32_t hello_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    static const char k_type[] = "text/plain; charset=utf-8";
    const cwsgi_header headers[] = {
        {"Content-Type", 12, k_type, sizeof k_type - 1},
        {"Content-Length", 14, k_length, sizeof k_length - 1},
    };
    int32_t rc = g_api->start_response(req, 200, NULL, headers, 2, 0);
    if (rc != CWSGI_OK) {
        return rc;
    }
    return g_api->write(req, k_body, sizeof k_body - 1);
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* flags need 1.1 (ABI-STRUCT-5) */
    .name = "hello",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = hello_init,
    .handle = hello_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
