// app.cc: loading app.so and the load-time handshake.
//
// Checks run in the order a user would want to hear about problems: the file, the shared
// object, the entry symbol, the entry's answer, then the descriptor field by field. Each
// failure is one line naming the file, what is wrong and the spec rule (ABI-LOAD-*).
#include "app.hh"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "context.hh"

namespace cwsgi::core {

namespace {

// The descriptor as CWSGI 1.0 defines it: apps built against 1.0 have at least this size.
// The descriptor as CWSGI 1.0 defined it (everything before the 1.1 `flags`), and as this
// server knows it.
constexpr size_t kDescV10Size = offsetof(cwsgi_app_desc, flags);
constexpr size_t kDescKnownSize = sizeof(cwsgi_app_desc);
constexpr uint32_t kKnownAppFlags = CWSGI_APP_COOPERATIVE;

std::string errbuf_text(const char *buf)
{
    std::string s(buf);
    for (char &c : s) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return s.empty() ? std::string("(no message)") : s;
}

} // namespace

App::~App() = default; // never dlclose (ABI-LOAD-8): app threads or TLS destructors may live on

std::unique_ptr<App> App::load(const std::string &path, const cwsgi_server_api *api, std::string &error)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = fmt::format("cannot load app '{}': {}", path, std::strerror(errno));
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        error = fmt::format("cannot load app '{}': not a regular file", path);
        return nullptr;
    }
    // dlopen searches the library path for names without a slash; an app path is a file path.
    std::string file = path.find('/') == std::string::npos ? "./" + path : path;
    dlerror();
    void *dl = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl == nullptr) {
        const char *why = dlerror();
        error = fmt::format("cannot load app '{}': not a loadable shared object: {} (ABI-LOAD-2)", path,
                            why ? why : "unknown dlopen error");
        return nullptr;
    }
    dlerror();
    void *sym = ::dlsym(dl, CWSGI_ENTRY_SYMBOL);
    if (sym == nullptr) {
        error = fmt::format("cannot load app '{}': it exports no '{}' symbol: is it a CWSGI app built with "
                            "CWSGI_EXPORT (or CWSGI_APP in C++)? (ABI-LOAD-1)",
                            path, CWSGI_ENTRY_SYMBOL);
        return nullptr; // dl stays open: never dlclose, see above
    }
    cwsgi_entry_fn entry;
    static_assert(sizeof entry == sizeof sym);
    std::memcpy(&entry, &sym, sizeof entry); // POSIX guarantees this conversion works
    auto app = from_entry(entry, api, error, path);
    if (app) app->dl_ = dl;
    return app;
}

std::unique_ptr<App> App::from_entry(cwsgi_entry_fn entry, const cwsgi_server_api *api, std::string &error,
                                     std::string origin)
{
    const cwsgi_app_desc *desc = nullptr;
    int32_t rc = entry(api, &desc);
    if (rc != CWSGI_OK) {
        error = fmt::format("cannot load app '{}': its entry refused this server: {} ({}) (ABI-LOAD-3)", origin,
                            cwsgi_err_name(rc), cwsgi_strerror(rc));
        return nullptr;
    }
    if (desc == nullptr) {
        error = fmt::format("cannot load app '{}': its entry returned no descriptor (ABI-LOAD-3)", origin);
        return nullptr;
    }
    return check(desc, api, std::move(origin), error);
}

std::unique_ptr<App> App::check(const cwsgi_app_desc *desc, const cwsgi_server_api *api, std::string origin,
                                std::string &error)
{
    auto bad = [&](const std::string &what, const char *rule) {
        error = fmt::format("cannot load app '{}': {} ({})", origin, what, rule);
        return nullptr;
    };
    if (desc->abi_major != CWSGI_ABI_MAJOR) {
        return bad(fmt::format("it was built for CWSGI ABI {}.x; this server implements ABI {}.{}: rebuild the app "
                               "against this cwsgi.h",
                               desc->abi_major, CWSGI_ABI_MAJOR, CWSGI_ABI_MINOR),
                   "ABI-VER-1");
    }
    if (desc->abi_minor > api->abi_minor) {
        return bad(fmt::format("it needs CWSGI ABI {}.{}; this server implements {}.{}: upgrade the server",
                               desc->abi_major, desc->abi_minor, api->abi_major, api->abi_minor),
                   "ABI-VER-2");
    }
    if (desc->struct_size < kDescV10Size) {
        return bad(fmt::format("its descriptor is {} bytes, smaller than the {} bytes of CWSGI 1.0", desc->struct_size,
                               kDescV10Size),
                   "ABI-STRUCT-1");
    }
    // ABI-STRUCT-4: a newer app's descriptor may be larger; unknown trailing fields must be
    // zero, or the app relies on something this server does not know.
    const unsigned char *bytes = reinterpret_cast<const unsigned char *>(desc);
    for (size_t i = kDescKnownSize; i < desc->struct_size; ++i) {
        if (bytes[i] != 0) {
            return bad(fmt::format("its descriptor sets fields past the {} bytes this server knows", kDescKnownSize),
                       "ABI-STRUCT-4");
        }
    }
    if (desc->reserved != 0) return bad("its descriptor's reserved field is not 0", "ABI-STRUCT-4");
    // A 1.0 descriptor ends before `flags`: read only the bytes the app has (ABI-STRUCT-1).
    cwsgi_app_desc copy{};
    std::memcpy(&copy, desc, std::min<size_t>(desc->struct_size, kDescKnownSize));
    if (copy.flags != 0 && copy.abi_minor < 1) {
        // A 1.0 server would refuse these bytes (ABI-STRUCT-4); say so here rather than there.
        return bad("its descriptor sets flags, a CWSGI 1.1 field, but declares abi_minor 0: declare abi_minor 1",
                   "ABI-STRUCT-5");
    }
    if ((copy.flags & ~kKnownAppFlags) != 0 || copy.reserved2 != 0) {
        return bad(fmt::format("its descriptor sets unknown flags 0x{:x}", copy.flags & ~kKnownAppFlags),
                   "ABI-STRUCT-4");
    }
    if (desc->handle == nullptr) return bad("its descriptor has no handle callback", "ABI-LOAD-4");
    if (desc->thread_safety != CWSGI_THREADS_SERIAL && desc->thread_safety != CWSGI_THREADS_SAFE) {
        return bad(fmt::format("unknown thread_safety value {}", desc->thread_safety), "ABI-LOAD-6");
    }
    uint64_t missing = desc->required_caps & ~api->capabilities;
    if (missing) {
        Context *ctx = Context::current();
        return bad(fmt::format("it requires capabilities the '{}' adapter does not offer: {}",
                               ctx ? ctx->adapter_name() : std::string("current"), capabilities_to_string(missing)),
                   "ABI-LOAD-5");
    }
    if (desc->required_extensions) {
        for (const char *const *e = desc->required_extensions; *e; ++e) {
            if (api->get_extension(*e, 1) == nullptr) {
                return bad(fmt::format("it requires extension '{}', which this server does not offer", *e), "EXT-1");
            }
        }
    }
    auto app = std::unique_ptr<App>(new App());
    app->desc_ = copy;
    app->origin_ = std::move(origin);
    app->api_ = api;
    return app;
}

std::string App::describe() const
{
    std::string exts;
    if (desc_.required_extensions) {
        for (const char *const *e = desc_.required_extensions; *e; ++e) {
            if (!exts.empty()) exts += ", ";
            exts += *e;
        }
    }
    return fmt::format("app:            {}\n"
                       "name:           {}\n"
                       "version:        {}\n"
                       "abi:            {}.{} (server implements {}.{})\n"
                       "thread-safety:  {}\n"
                       "cooperative:    {}\n"
                       "requires caps:  {}\n"
                       "requires exts:  {}\n"
                       "callbacks:      init={} worker_start={} worker_stop={} destroy={} on_request_end={}\n",
                       origin_, desc_.name ? desc_.name : "(unnamed)", desc_.version ? desc_.version : "(none)",
                       desc_.abi_major, desc_.abi_minor, CWSGI_ABI_MAJOR, CWSGI_ABI_MINOR,
                       desc_.thread_safety == CWSGI_THREADS_SAFE ? "safe (concurrent handle calls)"
                                                                 : "serial (one handle call at a time)",
                       cooperative() ? "yes (handle blocks only inside CWSGI calls)" : "no",
                       capabilities_to_string(desc_.required_caps), exts.empty() ? "none" : exts,
                       desc_.init ? "yes" : "no", desc_.worker_start ? "yes" : "no", desc_.worker_stop ? "yes" : "no",
                       desc_.destroy ? "yes" : "no", desc_.on_request_end ? "yes" : "no");
}

int32_t App::init(std::string &error)
{
    if (desc_.init == nullptr) {
        initialised_ = true;
        return CWSGI_OK;
    }
    char buf[CWSGI_ERRBUF_SIZE] = {0};
    int32_t rc = desc_.init(api_, &state_, buf, sizeof buf);
    buf[sizeof buf - 1] = '\0';
    if (rc < 0) {
        error = fmt::format("app '{}' failed to initialise: {} [{}] (LIFE-LOAD-2)", origin_, errbuf_text(buf),
                            cwsgi_err_name(rc));
        return rc;
    }
    initialised_ = true;
    return CWSGI_OK;
}

int32_t App::worker_start(uint32_t worker_id, std::string &error)
{
    if (desc_.worker_start == nullptr) return CWSGI_OK;
    char buf[CWSGI_ERRBUF_SIZE] = {0};
    int32_t rc = desc_.worker_start(state_, worker_id, buf, sizeof buf);
    buf[sizeof buf - 1] = '\0';
    if (rc < 0) {
        error = fmt::format("app '{}' failed to start worker {}: {} [{}] (LIFE-WORKER-2)", origin_, worker_id,
                            errbuf_text(buf), cwsgi_err_name(rc));
    }
    return rc;
}

void App::worker_stop(uint32_t worker_id)
{
    if (desc_.worker_stop) desc_.worker_stop(state_, worker_id);
}

void App::destroy()
{
    if (initialised_ && desc_.destroy) desc_.destroy(state_);
    initialised_ = false;
}

int32_t App::handle(cwsgi_request *req)
{
    if (desc_.thread_safety == CWSGI_THREADS_SERIAL && !serialized_by_caller_) {
        std::lock_guard<std::mutex> lock(serial_); // THR-1
        return desc_.handle(state_, req);
    }
    return desc_.handle(state_, req);
}

void App::request_end(cwsgi_request *req, int32_t outcome)
{
    if (desc_.on_request_end == nullptr) return;
    if (desc_.thread_safety == CWSGI_THREADS_SERIAL && !serialized_by_caller_) {
        std::lock_guard<std::mutex> lock(serial_); // THR-1 covers every per-request callback
        desc_.on_request_end(state_, req, outcome);
        return;
    }
    desc_.on_request_end(state_, req, outcome);
}

} // namespace cwsgi::core
