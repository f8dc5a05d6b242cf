// mount.cc: several apps in one server, dispatched by path prefix (spec/composition.md,
// COMP-MOUNT-*), the deployment-level form of werkzeug's DispatcherMiddleware.
//
// cwsgi-serve --mount PREFIX=APP.so (repeatable) loads this middleware as the app with
// CWSGI_MOUNTS set to one "PREFIX=PATH" per line. Each app is loaded and handshaken, and all
// their lifecycle hooks run. A request goes to the longest prefix that matches its PATH_INFO on a
// segment boundary ("/" is the fallback); that app sees SCRIPT_NAME = the server's SCRIPT_NAME
// plus the prefix and PATH_INFO = the rest. A request no prefix matches gets 404.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../middleware.hh"

namespace {

using std::string_view;

struct Mount {
    std::string prefix; // "/api" (no trailing '/'), or "" for the fallback "/"
    cwsgi::mw::Inner app;
};

// One request's routing, in the request arena.
struct Route {
    void *app_user = nullptr;
    Mount *mount = nullptr;
    cwsgi_str script_name{"", 0};
    cwsgi_str path_info{"", 0};
};

const cwsgi_server_api *server;
cwsgi_server_api table;
cwsgi_app_desc desc;
std::vector<std::unique_ptr<Mount>> mounts; // longest prefix first

Route *route_of(cwsgi_request *req) { return static_cast<Route *>(server->get_user_data(req)); }

void mount_set_user_data(cwsgi_request *req, void *data)
{
    if (Route *r = route_of(req)) r->app_user = data;
}
void *mount_get_user_data(cwsgi_request *req)
{
    Route *r = route_of(req);
    return r ? r->app_user : nullptr;
}

int32_t mount_request_info(cwsgi_request *req, cwsgi_request_info *info)
{
    int32_t rc = server->request_info(req, info);
    Route *r = route_of(req);
    if (rc != CWSGI_OK || r == nullptr) return rc;
    if (info->struct_size >= offsetof(cwsgi_request_info, path_info) + sizeof(cwsgi_str)) {
        info->script_name = r->script_name;
        info->path_info = r->path_info;
    }
    return rc;
}

int32_t mount_environ_get(cwsgi_request *req, const char *key, cwsgi_str *out)
{
    Route *r = route_of(req);
    if (r != nullptr && key != nullptr && out != nullptr) {
        if (std::strcmp(key, "SCRIPT_NAME") == 0) return *out = r->script_name, CWSGI_OK;
        if (std::strcmp(key, "PATH_INFO") == 0) return *out = r->path_info, CWSGI_OK;
    }
    return server->environ_get(req, key, out);
}

int32_t mount_environ_at(cwsgi_request *req, size_t index, cwsgi_str *key, cwsgi_str *value)
{
    int32_t rc = server->environ_at(req, index, key, value);
    Route *r = route_of(req);
    if (rc == CWSGI_OK && r != nullptr && key != nullptr && value != nullptr) {
        string_view k(key->ptr, key->len);
        if (k == "SCRIPT_NAME") *value = r->script_name;
        if (k == "PATH_INFO") *value = r->path_info;
    }
    return rc;
}

// The mount for `path` (decoded PATH_INFO): the longest prefix equal to the path or followed
// in it by '/' (COMP-MOUNT-2), or nullptr.
Mount *match(string_view path)
{
    for (auto &m : mounts) {
        string_view p = m->prefix;
        if (p.empty()) return m.get();
        if (path.substr(0, p.size()) == p && (path.size() == p.size() || path[p.size()] == '/')) return m.get();
    }
    return nullptr;
}

int32_t mount_handle(void *, cwsgi_request *req)
{
    cwsgi_request_info info{};
    info.struct_size = sizeof info;
    Route *r = cwsgi::mw::arena_new<Route>(server, req);
    if (r == nullptr || server->request_info(req, &info) != CWSGI_OK) return CWSGI_E_NOMEM;
    string_view path(info.path_info.ptr, info.path_info.len);
    r->mount = match(path);
    if (r->mount == nullptr) {
        static const char body[] = "Not Found\n";
        cwsgi_header h[] = {{"Content-Type", 12, "text/plain", 10}};
        server->start_response(req, 404, nullptr, h, 1, 0);
        return server->write(req, body, sizeof body - 1);
    }
    std::string sn(info.script_name.ptr, info.script_name.len);
    sn += r->mount->prefix;
    string_view rest = path.substr(r->mount->prefix.size());
    r->script_name = cwsgi::mw::arena_str(server, req, sn.data(), sn.size());
    r->path_info = cwsgi::mw::arena_str(server, req, rest.data(), rest.size());
    server->set_user_data(req, r);
    return r->mount->app.desc.handle(r->mount->app.state, req);
}

void mount_request_end(void *, cwsgi_request *req, int32_t outcome)
{
    Route *r = route_of(req);
    if (r == nullptr || r->mount == nullptr) return;
    cwsgi::mw::Inner &a = r->mount->app;
    if (a.desc.on_request_end) a.desc.on_request_end(a.state, req, outcome);
}

int32_t mount_init(const cwsgi_server_api *, void **, char *errbuf, size_t errlen)
{
    for (auto &m : mounts) {
        int32_t rc = cwsgi::mw::init_inner(m->app, &table, errbuf, errlen);
        if (rc < 0) return rc;
    }
    return CWSGI_OK;
}

int32_t mount_worker_start(void *, uint32_t id, char *errbuf, size_t errlen)
{
    for (auto &m : mounts) {
        if (m->app.desc.worker_start == nullptr) continue;
        int32_t rc = m->app.desc.worker_start(m->app.state, id, errbuf, errlen);
        if (rc < 0) return rc;
    }
    return CWSGI_OK;
}

void mount_worker_stop(void *, uint32_t id)
{
    for (auto &m : mounts) {
        if (m->app.desc.worker_stop) m->app.desc.worker_stop(m->app.state, id);
    }
}

void mount_destroy(void *)
{
    for (auto &m : mounts) {
        if (m->app.desc.destroy) m->app.desc.destroy(m->app.state);
    }
}

void log_error(const std::string &msg)
{
    std::string line = "cwsgi-mount: " + msg;
    server->log(nullptr, CWSGI_LOG_ERROR, line.data(), line.size());
}

} // namespace

extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    server = api;
    mounts.clear();
    table = cwsgi::mw::copy_api(api);
    table.set_user_data = mount_set_user_data;
    table.get_user_data = mount_get_user_data;
    table.request_info = mount_request_info;
    table.environ_get = mount_environ_get;
    table.environ_at = mount_environ_at;
    const char *spec = std::getenv("CWSGI_MOUNTS");
    string_view rest = spec ? spec : "";
    desc = cwsgi_app_desc{};
    desc.struct_size = sizeof desc;
    desc.abi_major = CWSGI_ABI_MAJOR;
    desc.thread_safety = CWSGI_THREADS_SAFE;
    desc.flags = CWSGI_APP_COOPERATIVE;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        string_view line = rest.substr(0, nl);
        rest = nl == string_view::npos ? string_view() : rest.substr(nl + 1);
        if (line.empty()) continue;
        size_t eq = line.find('=');
        if (eq == string_view::npos || line[0] != '/') {
            log_error("bad mount '" + std::string(line) + "': expected PREFIX=APP.so with PREFIX starting with '/'");
            return CWSGI_E_INVAL;
        }
        auto m = std::make_unique<Mount>();
        m->prefix = std::string(line.substr(0, eq));
        while (!m->prefix.empty() && m->prefix.back() == '/') m->prefix.pop_back();
        std::string path(line.substr(eq + 1)), error;
        if (!cwsgi::mw::load_inner(path.c_str(), &table, m->app, error)) {
            log_error(error);
            return CWSGI_E_INVAL;
        }
        const cwsgi_app_desc &d = m->app.desc;
        // The composite promises only what every mounted app promises (COMP-MOUNT-3).
        if (d.abi_minor > desc.abi_minor) desc.abi_minor = d.abi_minor;
        if (d.thread_safety != CWSGI_THREADS_SAFE) desc.thread_safety = CWSGI_THREADS_SERIAL;
        if ((d.flags & CWSGI_APP_COOPERATIVE) == 0) desc.flags &= ~CWSGI_APP_COOPERATIVE;
        desc.required_caps |= d.required_caps;
        for (auto &o : mounts) {
            if (o->prefix == m->prefix) {
                log_error("prefix '" + std::string(line.substr(0, eq)) + "' is mounted twice");
                return CWSGI_E_INVAL;
            }
        }
        mounts.push_back(std::move(m));
    }
    if (mounts.empty()) {
        log_error("no mounts given (CWSGI_MOUNTS is empty: use cwsgi-serve --mount PREFIX=APP.so)");
        return CWSGI_E_INVAL;
    }
    std::stable_sort(mounts.begin(), mounts.end(),
                     [](const auto &a, const auto &b) { return a->prefix.size() > b->prefix.size(); });
    if (desc.abi_minor < 1) desc.abi_minor = 1; // flags is a 1.1 field (ABI-STRUCT-5)
    desc.name = "cwsgi-mount";
    desc.init = mount_init;
    desc.worker_start = mount_worker_start;
    desc.worker_stop = mount_worker_stop;
    desc.destroy = mount_destroy;
    desc.handle = mount_handle;
    desc.on_request_end = mount_request_end;
    *out = &desc;
    return CWSGI_OK;
}
