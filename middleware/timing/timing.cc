// timing.cc: a middleware that logs how long each request's handle() took (docs/composition.md).
#include <dlfcn.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include "cwsgi.h"
static const cwsgi_server_api *server; // the server's table: the inner app gets it unchanged
static cwsgi_app_desc inner, outer;    // the inner app's descriptor, and the one the server sees
static void *state;                    // the inner app's state
static int32_t t_init(const cwsgi_server_api *api, void **, char *err, size_t n)
{
    return inner.init ? inner.init(api, &state, err, n) : CWSGI_OK;
}
static int32_t t_start(void *, uint32_t id, char *err, size_t n)
{
    return inner.worker_start ? inner.worker_start(state, id, err, n) : CWSGI_OK;
}
static void t_stop(void *, uint32_t id)
{
    if (inner.worker_stop) inner.worker_stop(state, id);
}
static void t_destroy(void *)
{
    if (inner.destroy) inner.destroy(state);
}
static void t_end(void *, cwsgi_request *req, int32_t outcome)
{
    if (inner.on_request_end) inner.on_request_end(state, req, outcome);
}
static int32_t t_handle(void *, cwsgi_request *req)
{
    auto t0 = std::chrono::steady_clock::now();
    int32_t rc = inner.handle(state, req);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    cwsgi_request_info info{};
    info.struct_size = sizeof info;
    server->request_info(req, &info);
    std::string line = std::string("timing: ") + info.method.ptr + " " + info.target.ptr + " handle " +
                       std::to_string(us.count()) + " us";
    server->log(req, CWSGI_LOG_INFO, line.data(), line.size());
    return rc;
}

extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    const char *path = std::getenv("CWSGI_INNER_APP"); // set by the user, or cwsgi-serve -e
    void *dl = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    auto entry = reinterpret_cast<cwsgi_entry_fn>(dl ? dlsym(dl, CWSGI_ENTRY_SYMBOL) : nullptr);
    const cwsgi_app_desc *d = nullptr;
    if (entry == nullptr || entry(api, &d) != CWSGI_OK || d == nullptr) return CWSGI_E_INVAL;
    std::memcpy(&inner, d, d->struct_size < sizeof inner ? d->struct_size : sizeof inner);
    server = api;
    outer = inner, outer.struct_size = sizeof outer; // the inner app's minor, threads, caps, cooperative flag
    outer.name = "timing", outer.init = t_init, outer.worker_start = t_start, outer.worker_stop = t_stop;
    outer.destroy = t_destroy, outer.handle = t_handle, outer.on_request_end = t_end;
    *out = &outer;
    return CWSGI_OK;
}
