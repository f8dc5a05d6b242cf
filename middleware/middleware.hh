// middleware.hh: the pieces every CWSGI middleware shares (header-only, no server symbol).
//
// A middleware is an ordinary app.so: it exports cwsgi_app_entry, loads one or more inner
// apps with dlopen, and wraps both directions of the ABI (spec/composition.md, COMP-MW-*):
// the inner app gets a copy of the server's table with some functions replaced, and the server
// gets the middleware's own descriptor, whose callbacks call the inner app's. The inner app's
// path comes from an environment variable the server (cwsgi-serve --lint, --mount) or the user
// sets before the middleware is loaded: CWSGI_INNER_APP for a one-app middleware.
//
// Per-request state: a middleware takes the server's user-data slot for itself (its own
// struct, allocated from the request arena) and keeps the inner app's pointer in that struct,
// so its wrapped set_user_data/get_user_data give the inner app a slot of its own (MEM-USER-1
// still holds for the inner app). Middlewares nest: each layer does the same with the slot of
// the layer below.
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "cwsgi.h"

namespace cwsgi::mw {

/// An inner app as a middleware loaded it: its descriptor (copied, 1.0-sized ones zero-padded)
/// and the state its init returned.
struct Inner {
    cwsgi_app_desc desc{};
    void *state = nullptr;
    std::string path;
};

/// Loads the app.so at `path` and runs its entry with `api` (the table the inner app will
/// see). Returns false with `error` set to one line when the file, the symbol or the entry
/// fails; the descriptor checks themselves are the server's, run on the middleware's own
/// descriptor, which copies the inner app's declarations (COMP-MW-2).
/// Ownership: the library stays loaded for the process (ABI-LOAD-8). Threads: load time only.
inline bool load_inner(const char *path, const cwsgi_server_api *api, Inner &out, std::string &error)
{
    if (path == nullptr || *path == '\0') {
        error = "no inner app given (set CWSGI_INNER_APP to the path of an app.so)";
        return false;
    }
    std::string file = std::strchr(path, '/') ? path : std::string("./") + path;
    void *dl = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl == nullptr) {
        const char *why = ::dlerror();
        error = std::string("cannot load inner app '") + path + "': " + (why ? why : "dlopen failed");
        return false;
    }
    void *sym = ::dlsym(dl, CWSGI_ENTRY_SYMBOL);
    if (sym == nullptr) {
        error = std::string("inner app '") + path + "' exports no " CWSGI_ENTRY_SYMBOL " (ABI-LOAD-1)";
        return false;
    }
    cwsgi_entry_fn entry;
    std::memcpy(&entry, &sym, sizeof entry);
    const cwsgi_app_desc *desc = nullptr;
    int32_t rc = entry(api, &desc);
    if (rc != CWSGI_OK || desc == nullptr || desc->handle == nullptr ||
        desc->struct_size < offsetof(cwsgi_app_desc, flags)) {
        error = std::string("inner app '") + path +
                "' refused to load or gave no usable descriptor: " + cwsgi_err_name(rc) + " (ABI-LOAD-3)";
        return false;
    }
    std::memcpy(&out.desc, desc, std::min<size_t>(desc->struct_size, sizeof out.desc));
    out.desc.struct_size = static_cast<uint32_t>(std::min<size_t>(desc->struct_size, sizeof out.desc));
    out.path = path;
    return true;
}

/// The table an inner app sees: a copy of the server's, cut to the size this header knows, so
/// that the middleware never forwards a function it does not understand (COMP-MW-3).
inline cwsgi_server_api copy_api(const cwsgi_server_api *api)
{
    cwsgi_server_api copy{};
    size_t n = std::min<size_t>(api->struct_size, sizeof copy);
    std::memcpy(&copy, api, n);
    copy.struct_size = static_cast<uint32_t>(n);
    return copy;
}

/// Runs an inner app's init with the errbuf contract of the descriptor's init.
inline int32_t init_inner(Inner &in, const cwsgi_server_api *api, char *errbuf, size_t errlen)
{
    if (in.desc.init == nullptr) return CWSGI_OK;
    return in.desc.init(api, &in.state, errbuf, errlen);
}

/// Allocates a zeroed T from the request arena (freed after on_request_end, MEM-ARENA-1).
/// T must be trivially destructible. Returns nullptr when the arena is exhausted.
template <typename T> T *arena_new(const cwsgi_server_api *api, cwsgi_request *req)
{
    void *p = api->alloc(req, sizeof(T));
    return p ? new (p) T() : nullptr;
}

/// Copies `s` into the request arena as a NUL-terminated cwsgi_str ("" when out of memory).
inline cwsgi_str arena_str(const cwsgi_server_api *api, cwsgi_request *req, const char *s, size_t n)
{
    char *p = static_cast<char *>(api->alloc(req, n + 1));
    if (p == nullptr) return cwsgi_str{"", 0};
    std::memcpy(p, s, n);
    p[n] = '\0';
    return cwsgi_str{p, n};
}

/// Writes a middleware's error line into errbuf (at most errlen bytes, NUL-terminated).
inline void set_err(char *errbuf, size_t errlen, const std::string &msg)
{
    if (errbuf == nullptr || errlen == 0) return;
    size_t n = std::min(msg.size(), errlen - 1);
    std::memcpy(errbuf, msg.data(), n);
    errbuf[n] = '\0';
}

} // namespace cwsgi::mw
