// timing.cc: the worked example of docs/composition.md, a middleware that logs how long each
// request's handle() took. It loads the app named by CWSGI_INNER_APP, hands the server a
// descriptor of its own that wraps the inner app's callbacks, and passes the inner app the
// server's table unchanged (a middleware that wraps table calls, cwsgi-lint, replaces entries
// of its copy, see middleware.hh).
#include <chrono>
#include <cstdlib>
#include <string>

#include "../middleware.hh"

namespace {

cwsgi::mw::Inner inner;
const cwsgi_server_api *server;
cwsgi_app_desc desc;

int32_t timing_init(const cwsgi_server_api *api, void **, char *errbuf, size_t errlen)
{
    return cwsgi::mw::init_inner(inner, api, errbuf, errlen);
}
int32_t timing_worker_start(void *, uint32_t id, char *errbuf, size_t errlen)
{
    return inner.desc.worker_start ? inner.desc.worker_start(inner.state, id, errbuf, errlen) : CWSGI_OK;
}
void timing_worker_stop(void *, uint32_t id) { if (inner.desc.worker_stop) inner.desc.worker_stop(inner.state, id); }
void timing_destroy(void *) { if (inner.desc.destroy) inner.desc.destroy(inner.state); }
void timing_end(void *, cwsgi_request *req, int32_t outcome)
{
    if (inner.desc.on_request_end) inner.desc.on_request_end(inner.state, req, outcome);
}

int32_t timing_handle(void *, cwsgi_request *req)
{
    auto t0 = std::chrono::steady_clock::now();
    int32_t rc = inner.desc.handle(inner.state, req);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    cwsgi_request_info info{};
    info.struct_size = sizeof info;
    server->request_info(req, &info);
    std::string line = "timing: " + std::string(info.method.ptr) + " " + info.target.ptr + " handle " +
                       std::to_string(us.count()) + " us";
    server->log(req, CWSGI_LOG_INFO, line.data(), line.size());
    return rc;
}

} // namespace

extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    std::string error;
    server = api;
    if (!cwsgi::mw::load_inner(std::getenv("CWSGI_INNER_APP"), api, inner, error)) return CWSGI_E_INVAL;
    desc = inner.desc; // the inner app's declarations: ABI minor, threads, caps, cooperative flag
    desc.name = "timing";
    desc.init = timing_init;
    desc.worker_start = timing_worker_start;
    desc.worker_stop = timing_worker_stop;
    desc.destroy = timing_destroy;
    desc.handle = timing_handle;
    desc.on_request_end = timing_end;
    *out = &desc;
    return CWSGI_OK;
}
