/*
 * bad_common.h: the shared half of the deliberately misbehaving apps (bad_*.c). Each bad app
 * defines bad_handle() with one spec violation that cwsgi-lint must report, and nothing else;
 * tests/middleware/test_middleware.cc checks that lint finds exactly that. They are never
 * served without lint outside tests.
 */
#ifndef BAD_COMMON_H
#define BAD_COMMON_H
#include <string.h>

#include "cwsgi.h"

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
    .abi_minor = 0,
    .name = "bad",
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = bad_init,
    .handle = bad_entry_handle,
};

CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    (void)api;
    *out = &bad_desc;
    return CWSGI_OK;
}
#endif
