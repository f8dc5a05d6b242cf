// app.hh: loading an app.so and the load-time handshake (ABI-LOAD-*, ABI-VER-*).
//
// load() opens the file with dlopen(RTLD_NOW | RTLD_LOCAL) so unresolved symbols fail at
// load and apps cannot interpose on each other, finds the one entry symbol, and checks the
// descriptor before any app code beyond the entry runs. Each failure has a one-line message
// that says what is wrong and what to do. Apps are never dlclose()d (ABI-LOAD-8).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "cwsgi.h"

namespace cwsgi::core {

class App {
public:
    /// Loads `path` and checks its descriptor against `api` (capabilities included).
    /// Returns nullptr with `error` set to one line on failure. Does not call init.
    static std::unique_ptr<App> load(const std::string &path, const cwsgi_server_api *api, std::string &error);
    /// Same checks for an app linked into the server (static mode, tests).
    static std::unique_ptr<App> from_entry(cwsgi_entry_fn entry, const cwsgi_server_api *api, std::string &error,
                                           std::string origin = "<static>");

    ~App();
    App(const App &) = delete;
    App &operator=(const App &) = delete;

    const cwsgi_app_desc &desc() const { return desc_; }
    const std::string &origin() const { return origin_; }
    /// Whether the app keeps the cooperative promise (CWSGI_APP_COOPERATIVE, THR-5).
    bool cooperative() const { return (desc_.flags & CWSGI_APP_COOPERATIVE) != 0; }
    /// Whether the app requires CWSGI_CAP_THREADS, which sync mode does not offer (THR-10).
    bool needs_threads() const { return (desc_.required_caps & CWSGI_CAP_THREADS) != 0; }
    /// One paragraph for --check: name, version, ABI, thread-safety, caps, extensions.
    std::string describe() const;

    /// Runs desc.init (LIFE-LOAD-1). On failure `error` carries the app's own message.
    int32_t init(std::string &error);
    /// Runs desc.worker_start (LIFE-WORKER-1).
    int32_t worker_start(uint32_t worker_id, std::string &error);
    /// Runs desc.worker_stop (LIFE-WORKER-3); no-op without one.
    void worker_stop(uint32_t worker_id);
    /// Runs desc.destroy once, if init succeeded.
    void destroy();

    /// For a CWSGI_THREADS_SERIAL app whose callbacks the caller serialises itself (the
    /// execution layer's turn in cooperative mode, THR-8): handle and request_end then take
    /// no mutex, which would be held across a fiber switch. Set before serving.
    void set_serialized_by_caller(bool yes) { serialized_by_caller_ = yes; }

    /// Calls desc.handle, serialised by a mutex when the app is CWSGI_THREADS_SERIAL (THR-1).
    int32_t handle(cwsgi_request *req);
    /// Calls desc.on_request_end when the app has one.
    void request_end(cwsgi_request *req, int32_t outcome);

private:
    App() = default;
    static std::unique_ptr<App> check(const cwsgi_app_desc *desc, const cwsgi_server_api *api, std::string origin,
                                      std::string &error);
    cwsgi_app_desc desc_{};
    std::string origin_;
    void *dl_ = nullptr;
    void *state_ = nullptr;
    const cwsgi_server_api *api_ = nullptr;
    bool initialised_ = false;
    bool serialized_by_caller_ = false;
    std::mutex serial_;
};

} // namespace cwsgi::core
