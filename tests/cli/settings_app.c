/*
 * settings_app.c: the app of test_app_settings (ABI 1.2): it answers with the settings it sees.
 *   GET /init        the "greeting" setting as init read it ("(unset)" when absent)
 *   GET /worker      the same, as worker_start read it
 *   GET /get/KEY     setting_get(KEY), or 404 "not set"
 *   GET /all         every setting from setting_at, one "key=value" line each, in order
 * init refuses to start when the setting "refuse" is set, with its value in the message, so that
 * a test sees which settings `--check` hands to init.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwsgi.h"

typedef struct state {
    const cwsgi_server_api *api;
    char init_greeting[256];
    char worker_greeting[256];
} state;

static void read_greeting(const cwsgi_server_api *api, char *out, size_t cap)
{
    cwsgi_str v;
    if (api->setting_get("greeting", &v) == CWSGI_OK) {
        snprintf(out, cap, "%s", v.ptr);
    } else {
        snprintf(out, cap, "(unset)");
    }
}

static int32_t app_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    cwsgi_str v;
    if (api->setting_get("refuse", &v) == CWSGI_OK) {
        snprintf(errbuf, errlen, "refused by the setting refuse = %s", v.ptr);
        return CWSGI_E_APP;
    }
    state *s = calloc(1, sizeof *s);
    if (s == NULL) return CWSGI_E_NOMEM;
    s->api = api;
    read_greeting(api, s->init_greeting, sizeof s->init_greeting);
    *app_state = s;
    return CWSGI_OK;
}

static int32_t app_worker_start(void *app_state, uint32_t worker_id, char *errbuf, size_t errlen)
{
    (void)worker_id;
    (void)errbuf;
    (void)errlen;
    state *s = app_state;
    read_greeting(s->api, s->worker_greeting, sizeof s->worker_greeting);
    return CWSGI_OK;
}

static void app_destroy(void *app_state) { free(app_state); }

static int32_t reply(const cwsgi_server_api *api, cwsgi_request *req, uint32_t status, const char *body, size_t len)
{
    char n[24];
    int n_len = snprintf(n, sizeof n, "%zu", len);
    /* A Content-Length, so that the test's client reads the body without chunked framing. */
    cwsgi_header h[] = {{"Content-Type", 12, "text/plain", 10}, {"Content-Length", 14, n, (size_t)n_len}};
    int32_t rc = api->start_response(req, status, NULL, h, 2, 0);
    if (rc != CWSGI_OK) return rc;
    return api->write(req, body, len);
}

static int32_t app_handle(void *app_state, cwsgi_request *req)
{
    state *s = app_state;
    const cwsgi_server_api *api = s->api;
    cwsgi_str path;
    if (api->environ_get(req, "PATH_INFO", &path) != CWSGI_OK) return CWSGI_E_APP;
    if (strcmp(path.ptr, "/init") == 0) return reply(api, req, 200, s->init_greeting, strlen(s->init_greeting));
    if (strcmp(path.ptr, "/worker") == 0) return reply(api, req, 200, s->worker_greeting, strlen(s->worker_greeting));
    if (strncmp(path.ptr, "/get/", 5) == 0) {
        cwsgi_str v;
        if (api->setting_get(path.ptr + 5, &v) != CWSGI_OK) return reply(api, req, 404, "not set", 7);
        return reply(api, req, 200, v.ptr, v.len);
    }
    if (strcmp(path.ptr, "/all") == 0) {
        size_t total = 0, i;
        cwsgi_str k, v;
        for (i = 0; api->setting_at(i, &k, &v) == CWSGI_OK; ++i) total += k.len + v.len + 2;
        char *body = api->alloc(req, total + 1);
        if (body == NULL) return CWSGI_E_NOMEM;
        size_t at = 0;
        for (i = 0; api->setting_at(i, &k, &v) == CWSGI_OK; ++i) {
            memcpy(body + at, k.ptr, k.len);
            at += k.len;
            body[at++] = '=';
            memcpy(body + at, v.ptr, v.len);
            at += v.len;
            body[at++] = '\n';
        }
        return reply(api, req, 200, body, at);
    }
    return reply(api, req, 404, "no such page", 12);
}

static const cwsgi_app_desc desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 2, /* setting_get and setting_at, without a CWSGI_API_HAS check */
    .name = "settings",
    .version = "1",
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = app_init,
    .worker_start = app_worker_start,
    .destroy = app_destroy,
    .handle = app_handle,
};

CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &desc;
    return CWSGI_OK;
}
