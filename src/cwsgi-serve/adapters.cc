// adapters.cc: the one table of adapters cwsgi-serve knows (lib/core/adapter.hh).
//
// An adapter whose library was missing at build time keeps its row with built = false, so
// `--adapter NAME` can say why it is not there instead of "unknown adapter".
#include <cstring>

#include "core/adapter.hh"

#ifdef CWSGI_HAVE_H2O
#include "h2o/h2o.hh"
#endif
#ifdef CWSGI_HAVE_MICROHTTPD
#include "microhttpd/microhttpd.hh"
#endif
#ifdef CWSGI_HAVE_FORKING
#include "forking/forking.hh"
#endif

namespace cwsgi::core {

namespace {

[[maybe_unused]] AdapterOps missing(const char *name, const char *summary, const char *reason)
{
    return AdapterOps{name, summary, false, reason, 0, nullptr, false};
}

const AdapterOps *build_table()
{
    static AdapterOps table[] = {
#ifdef CWSGI_HAVE_H2O
        cwsgi::adapters::h2o_ops(),
#else
        missing("h2o", "libh2o: HTTP/1.1, HTTP/2, TLS (the fast one)",
                "libh2o was not found at build time (apt-get install libh2o-evloop-dev)"),
#endif
#ifdef CWSGI_HAVE_MICROHTTPD
        cwsgi::adapters::microhttpd_ops(),
#else
        missing("microhttpd", "libmicrohttpd: threads, epoll (the simple embeddable one)",
                "libmicrohttpd was not found at build time (apt-get install libmicrohttpd-dev)"),
#endif
#ifdef CWSGI_HAVE_FORKING
        cwsgi::adapters::forking_ops(),
#else
        missing("forking", "pre-fork workers with a strict HTTP/1.1 parser and crash isolation",
                "the forking adapter is not part of this build"),
#endif
        AdapterOps{nullptr, nullptr, false, nullptr, 0, nullptr, false},
    };
    return table;
}

} // namespace

const AdapterOps *adapter_table()
{
    static const AdapterOps *table = build_table();
    return table;
}

const AdapterOps *find_adapter(const char *name)
{
    for (const AdapterOps *a = adapter_table(); a->name; ++a) {
        if (std::strcmp(a->name, name) == 0) return a;
    }
    return nullptr;
}

} // namespace cwsgi::core
