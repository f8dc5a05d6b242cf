/*
 * bad_common.h: the shared half of the deliberately misbehaving apps (bad_*.c). Each bad app
 * defines bad_handle() with one spec violation that cwsgi-lint must report, and nothing else;
 * tests/middleware/test_middleware.cc (in-process) and conformance/lint_run.py (cwsgi-serve on
 * every adapter) check that lint finds exactly that. They are never served without lint
 * outside tests.
 *
 * Before including this file a bad app may define BAD_FLAGS (cwsgi_app_desc.flags, e.g.
 * CWSGI_APP_COOPERATIVE, with BAD_ABI_MINOR 1) and BAD_ON_REQUEST_END, BAD_WORKER_STOP and
 * BAD_DESTROY (descriptor callbacks it defines itself).
 */
#ifndef BAD_COMMON_H
#define BAD_COMMON_H
#include <string.h>

#include "cwsgi.h"

#ifndef BAD_FLAGS
#define BAD_FLAGS 0
#endif
#ifndef BAD_ABI_MINOR
#define BAD_ABI_MINOR 0
#endif
#ifndef BAD_ON_REQUEST_END
#define BAD_ON_REQUEST_END NULL
#endif
#ifndef BAD_WORKER_STOP
#define BAD_WORKER_STOP NULL
#endif
#ifndef BAD_DESTROY
#define BAD_DESTROY NULL
#endif

static const cwsgi_server_api *g_api;
static int32_t bad_handle(cwsgi_request *req);

static int32_t bad_init(const cwsgi_server_api *api, void **state, char *errbuf, size_t errlen)
{
    (void)state, (void)errbuf, (void)errlen;
    g_api = api;
    return CWSGI_OK;
}

static int32_t bad_entry_handle(void *state, cwsgi_request *req)
{
    (void)state;
    return bad_handle(req);
}

/* Starts a 200 text/plain response with name: value as one more header (none when name is NULL). */
static inline int32_t bad_start(cwsgi_request *req, const char *name, const char *value)
{
    cwsgi_header h[2] = {{"Content-Type", 12, "text/plain", 10},
                         {name, name ? strlen(name) : 0, value, value ? strlen(value) : 0}};
    return g_api->start_response(req, 200, NULL, h, name ? 2 : 1, 0);
}

static const cwsgi_app_desc bad_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = BAD_ABI_MINOR,
    .name = "bad",
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = bad_init,
    .worker_stop = BAD_WORKER_STOP,
    .destroy = BAD_DESTROY,
    .handle = bad_entry_handle,
    .on_request_end = BAD_ON_REQUEST_END,
    .flags = BAD_FLAGS,
};

CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    (void)api;
    *out = &bad_desc;
    return CWSGI_OK;
}
#endif
