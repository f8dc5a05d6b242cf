// gunicorn_gaps.cc: gunicorn's flags and settings (gunicorn/config.py, 22.0) that cwsgi-serve
// does not have. Names are gunicorn's command-line names without dashes and, where the
// config-file setting is spelled otherwise, that name too.
#include "gunicorn_gaps.hh"

#include <string>

namespace cwsgi::serve {

namespace {

struct Gap {
    const char *names; // space-separated, dashes only
    const char *reason;
};

// Trimmed as features arrive: a flag that gets implemented leaves this table in the same commit.
constexpr Gap kGaps[] = {
    {"ssl-version cert-reqs ca-certs suppress-ragged-eofs do-handshake-on-connect ciphers ssl-context",
     "TLS takes --certfile and --keyfile (h2o adapter) with OpenSSL's defaults; for client certificates or a "
     "cipher policy, terminate TLS in a proxy in front (docs/deployment.md)"},
    // ---- the rest ------------------------------------------------------------------------
    {"D daemon enable-stdio-inheritance R",
     "cwsgi-serve stays in the foreground; run it under systemd or supervisor (docs/deployment.md)"},
    {"backlog", "the listen backlog is 2048, gunicorn's default, and the kernel caps it at net.core.somaxconn"},
    {"worker-connections", "a worker serves as many connections as its event loop holds; bound the work with -k sync, "
                           "--threads (gthread) or --loop-threads, and put a proxy in front to cap connections"},
    {"worker-tmp-dir", "the worker heartbeat lives in shared memory, not in a file"},
    {"reload-engine reload-extra-file reload-extra-files", "--reload watches the app's .so file and nothing else"},
    {"spew", "there is no tracer; use gdb or perf on the worker"},
    {"no-sendfile sendfile", "the app chooses between write and send_file; middleware must not defeat it"},
    {"reuse-port", "the master binds once and the workers share its sockets"},
    {"initgroups", "--user and --group set the uid and the primary gid only"},
    {"forwarded-allow-ips secure-scheme-headers",
     "CWSGI never rewrites REMOTE_ADDR or the URL scheme from forwarded headers (spec/environ.md "
     "ENV-KEYS-6 and 7); the app reads X-Forwarded-* itself, set by a proxy it trusts"},
    {"proxy-protocol proxy-allow-from proxy-allow-ips",
     "the PROXY protocol is not read; let the proxy send X-Forwarded-For instead"},
    {"access-logformat access-log-format", "the access log is always in the Apache combined format"},
    {"log-config log-config-json logconfig logconfig-json logconfig-dict logger-class",
     "logging is configured with --error-logfile, --access-logfile and --log-level (no Python logging)"},
    {"log-syslog syslog log-syslog-to syslog-addr log-syslog-prefix syslog-prefix log-syslog-facility "
     "syslog-facility disable-redirect-access-to-syslog",
     "there is no syslog output; log to standard error and let journald or your supervisor collect it"},
    {"capture-output", "the app's standard output and error already go where the server's go"},
    {"statsd-host statsd-prefix dogstatsd-tags", "there are no metrics yet; the access log has every request"},
    {"pythonpath", "a CWSGI app is a shared object; give its path"},
    {"paste paster paste-global raw-paste-global-conf", "there is no PasteDeploy; give the app's .so path"},
    {"strip-header-spaces permit-unconventional-http-method permit-unconventional-http-version "
     "casefold-http-method permit-obsolete-folding",
     "the HTTP parser is strict by specification (spec/server.md) and has no lenient modes"},
    {"header-map",
     "a header name with '_' never becomes an HTTP_* key (gunicorn's 'drop', spec/environ.md ENV-HDR-5) and "
     "stays readable in the header list"},
    {"tmp-upload-dir", "request bodies are streamed to the app, never spooled to disk"},
    {"on-starting on-reload when-ready pre-fork post-fork post-worker-init worker-int worker-abort pre-exec "
     "pre-request post-request child-exit worker-exit nworkers-changed on-exit",
     "server hooks are Python callables in gunicorn; a CWSGI app has init, worker_start and worker_stop"},
};

bool has_word(std::string_view list, std::string_view word)
{
    while (!list.empty()) {
        size_t end = list.find(' ');
        if (list.substr(0, end) == word) return true;
        if (end == std::string_view::npos) break;
        list.remove_prefix(end + 1);
    }
    return false;
}

} // namespace

const char *gunicorn_gap(std::string_view name)
{
    std::string key(name);
    for (char &c : key) {
        if (c == '_') c = '-';
    }
    for (const Gap &g : kGaps) {
        if (has_word(g.names, key)) return g.reason;
    }
    return nullptr;
}

} // namespace cwsgi::serve
