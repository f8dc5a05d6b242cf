// options.cc: the option table of cwsgi-serve and its conversion into a Config (options.hh).
//
// Flags follow gunicorn's names, short forms, defaults and meanings where gunicorn has the
// flag; a gunicorn flag that cwsgi-serve lacks is answered by name (gunicorn_gaps.hh). CLI11
// parses the words, the -c file comes in through TomlConfig, and finish() turns the raw words
// into Config fields, so each value is checked in one place whichever way it came.
#include "options.hh"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/adapter.hh"
#include "gunicorn_gaps.hh"
#include "toml_config.hh"

namespace cwsgi::serve {

using core::Config;

namespace {

/// The words of the command line (and the file) before conversion; finish() checks and
/// converts them. Defaults here are the defaults --help shows.
struct Raw {
    std::string worker_class, stack_size = "256k", max_worker_memory = "0", umask, log_level = "info";
    double timeout = 30, client_timeout = 30, graceful_timeout = 30, keep_alive = 2, harakiri = 0;
    int64_t limit_request_body = 0;
    std::vector<std::string> env;
    std::string lint;                // --lint[=warn|fail]: "" when not given
    std::vector<std::string> mounts; // --mount PREFIX=APP.so, in order
    bool check = false, print_config = false, version = false, list_adapters = false;
};

std::string absolute_from(const std::string &base_dir, const std::string &path)
{
    if (path.empty() || path.front() == '/') return path;
    return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

// "262144", "256k", "1m", "2g" (powers of 1024); false when it is not such a number.
bool parse_size(const std::string &s, uint64_t &out)
{
    if (s.empty() || s.front() < '0' || s.front() > '9') return false;
    errno = 0;
    char *end = nullptr;
    unsigned long long n = std::strtoull(s.c_str(), &end, 10);
    if (errno != 0) return false;
    const std::string unit(end);
    uint64_t scale = 1;
    if (unit == "k" || unit == "K") {
        scale = uint64_t{1} << 10;
    } else if (unit == "m" || unit == "M") {
        scale = uint64_t{1} << 20;
    } else if (unit == "g" || unit == "G") {
        scale = uint64_t{1} << 30;
    } else if (!unit.empty()) {
        return false;
    }
    if (n > UINT64_MAX / scale) return false;
    out = n * scale;
    return true;
}

// gunicorn's umask: Python's int(x, 0) after turning a leading "0<digit>" into "0o", so
// "0o22", "022" and "0x12" are octal, octal and hex, and "18" is decimal. 0 to 0777.
bool parse_umask(const std::string &s, int &out)
{
    std::string digits = s;
    int base = 10;
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O')) {
        digits = digits.substr(2);
        base = 8;
    } else if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        digits = digits.substr(2);
        base = 16;
    } else if (digits.size() > 1 && digits[0] == '0') {
        base = 8;
    }
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(),
                                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
        return false;
    }
    errno = 0;
    char *end = nullptr;
    long v = std::strtol(digits.c_str(), &end, base);
    if (errno != 0 || *end != '\0' || v < 0 || v > 0777) return false;
    out = static_cast<int>(v);
    return true;
}

const char *level_name(uint32_t level)
{
    switch (level) {
    case CWSGI_LOG_DEBUG: return "debug";
    case CWSGI_LOG_INFO: return "info";
    case CWSGI_LOG_WARNING: return "warning";
    case CWSGI_LOG_ERROR: return "error";
    default: return "critical";
    }
}

uint32_t level_of(const std::string &s)
{
    for (uint32_t l : {CWSGI_LOG_DEBUG, CWSGI_LOG_INFO, CWSGI_LOG_WARNING, CWSGI_LOG_ERROR}) {
        if (s == level_name(l)) return l;
    }
    return CWSGI_LOG_CRITICAL;
}

uint32_t to_ms(double seconds) { return static_cast<uint32_t>(std::llround(seconds * 1000.0)); }

bool all_digits(const std::string &s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A user or group as gunicorn takes it: a number as it is, a name that must exist.
bool known_user(const std::string &s) { return all_digits(s) || ::getpwnam(s.c_str()) != nullptr; }
bool known_group(const std::string &s) { return all_digits(s) || ::getgrnam(s.c_str()) != nullptr; }

// The folder of the middlewares (lint.so, mount.so): CWSGI_MIDDLEWARE_DIR, else the build
// tree's <build>/middleware next to <build>/src/cwsgi-serve, else <prefix>/lib/cwsgi/middleware.
std::string middleware_path(const std::string &name)
{
    namespace fs = std::filesystem;
    if (const char *dir = std::getenv("CWSGI_MIDDLEWARE_DIR"); dir != nullptr && *dir != '\0') {
        return (fs::path(dir) / name).string();
    }
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return name;
    fs::path bin = exe.parent_path();
    for (const fs::path &dir : {bin.parent_path() / "middleware", bin.parent_path() / "lib" / "cwsgi" / "middleware"}) {
        if (fs::exists(dir / name, ec)) return (dir / name).string();
    }
    return (bin.parent_path() / "middleware" / name).string();
}

// --mount and --lint (COMP-CLI-1): the app becomes mount.so with CWSGI_MOUNTS (one PREFIX=PATH a
// line; a plain APP is the "/" fallback), then lint.so with CWSGI_INNER_APP around whatever the
// app is by then. The variables go through --env, so the master sets them before loading.
bool compose(const Raw &raw, Invocation &out, std::vector<std::string> &env, std::string &error)
{
    if (!raw.mounts.empty()) {
        std::string spec;
        bool root = false;
        for (const std::string &m : raw.mounts) {
            size_t eq = m.find('=');
            if (eq == std::string::npos || eq == 0 || m.front() != '/' || eq + 1 == m.size()) {
                error = fmt::format("--mount: '{}' is not PREFIX=APP.so with PREFIX starting with '/'", m);
                return false;
            }
            root = root || m.substr(0, eq) == "/";
            spec += m + "\n";
        }
        if (!out.app_path.empty()) {
            if (root) {
                error = "--mount: an APP argument is the '/' fallback, and '/' is mounted already";
                return false;
            }
            spec += "/=" + out.app_path + "\n";
        }
        env.push_back("CWSGI_MOUNTS=" + spec);
        out.app_path = middleware_path("mount.so");
    }
    if (!raw.lint.empty()) {
        if (raw.lint != "warn" && raw.lint != "fail") {
            error = fmt::format("--lint: '{}' is not warn or fail", raw.lint);
            return false;
        }
        if (out.app_path.empty()) return true; // main() reports the missing APP
        env.push_back("CWSGI_INNER_APP=" + out.app_path);
        env.push_back("CWSGI_LINT=" + raw.lint);
        out.app_path = middleware_path("lint.so");
    }
    return true;
}

// Registers the options on `cli`, bound to `out` and `raw`. The -c option is added last by
// the caller, so that its formatter sees the whole table.
void add_options(CLI::App &cli, Invocation &out, Raw &raw)
{
    Config &cfg = out.config;
    cli.add_option("APP", out.app_path, "Path to the application shared object (app.so)");
    cli.add_option("--adapter", out.adapter_name,
                   "HTTP engine to serve with (default: the first built of h2o, microhttpd, forking)");
    cli.add_option(
           "-b,--bind", cfg.binds,
           "Address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; repeatable (default 127.0.0.1:8000)")
        ->type_name("ADDRESS")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

    // ---- worker processes (the arbiter) ----
    cli.add_option("-w,--workers", cfg.workers, "Worker processes under the master (env WEB_CONCURRENCY)")
        ->envname("WEB_CONCURRENCY")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    cli.add_option("-k,--worker-class", raw.worker_class,
                   "How handle() runs: sync (one request at a time per worker; on the forking adapter inline on "
                   "its loop, elsewhere on one app thread), gthread (a thread pool of --threads) or gevent "
                   "(fibers on the event-loop threads; the app must block only inside CWSGI calls). Default: "
                   "gevent when the app declares CWSGI_APP_COOPERATIVE, else sync on the forking adapter and "
                   "gthread on the others; sync with --threads N > 1 is gthread, as in gunicorn")
        ->check(CLI::IsMember({"auto", "sync", "gthread", "gevent", "threads", "cooperative"}));
    cli.add_option("--threads", cfg.threads,
                   "App threads per worker in gthread mode; N > 1 turns the sync worker class into gthread")
        ->check(CLI::Range(1, 1024))
        ->each([&cfg](const std::string &) { cfg.threads_given = true; })
        ->capture_default_str();
    cli.add_option("--loop-threads", cfg.loop_threads,
                   "Event-loop threads per worker (default: the adapter's choice: every CPU in gevent mode)")
        ->check(CLI::Range(1, 256));
    cli.add_option("--stack-size", raw.stack_size,
                   "Fiber stack size in gevent mode, bytes or with a k/m suffix (64k..64m); an overflow ends the "
                   "process with a message that names the request")
        ->type_name(kTypeSize)
        ->capture_default_str();
    cli.add_option("-t,--timeout", raw.timeout,
                   "Seconds a worker may stay silent before the master kills and replaces it (0 = never)")
        ->type_name(kTypeSeconds)
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    cli.add_option("--graceful-timeout", raw.graceful_timeout,
                   "Seconds in-flight requests get to finish on stop or reload")
        ->type_name(kTypeSeconds)
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    cli.add_option("--max-requests", cfg.max_requests, "Requests a worker serves before it is replaced (0 = no limit)")
        ->check(CLI::Range(uint32_t{0}, UINT32_MAX))
        ->capture_default_str();
    cli.add_option("--max-requests-jitter", cfg.max_requests_jitter,
                   "Adds 0..N at random to --max-requests per worker, so workers do not all restart at once")
        ->check(CLI::Range(uint32_t{0}, UINT32_MAX))
        ->capture_default_str();
    cli.add_option("--harakiri", raw.harakiri,
                   "Seconds one request may run before its worker is killed and replaced (uWSGI's harakiri; 0 = off)")
        ->type_name(kTypeSeconds)
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    cli.add_option("--max-worker-memory", raw.max_worker_memory,
                   "Resident memory above which a worker is replaced after its current request, bytes or with "
                   "a k/m/g suffix (uWSGI's reload-on-rss; 0 = off)")
        ->type_name(kTypeSize)
        ->capture_default_str();

    // ---- connections and requests ----
    cli.add_option("--keep-alive", raw.keep_alive, "Seconds an idle kept-alive connection stays open")
        ->type_name(kTypeSeconds)
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    cli.add_option("--client-timeout", raw.client_timeout,
                   "Seconds a request head or body may stall before the server answers 408")
        ->type_name(kTypeSeconds)
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    cli.add_option("--limit-request-body", raw.limit_request_body,
                   "Largest request body in bytes, answered 413 above it (0 = no limit)")
        ->check(CLI::Range(int64_t{0}, INT64_MAX))
        ->capture_default_str();
    cli.add_option("--limit-request-line", cfg.limits.request_line,
                   "Largest request line in bytes (answered 414 above it)")
        ->check(CLI::Range(16, 65536))
        ->capture_default_str();
    cli.add_option("--limit-request-fields", cfg.limits.request_fields,
                   "Most header fields in a request (431 above it)")
        ->check(CLI::Range(1, 32768))
        ->capture_default_str();
    // gunicorn spells this one --limit-request-field_size; both work.
    cli.add_option("--limit-request-field-size,--limit-request-field_size", cfg.limits.request_field_size,
                   "Largest header field line in bytes (431 above it)")
        ->check(CLI::Range(64, 65536))
        ->capture_default_str();
    cli.add_option("--script-name", cfg.script_name,
                   "Mount point: SCRIPT_NAME for every request; paths outside it get 404")
        ->envname("SCRIPT_NAME");
    // TLS, gunicorn's names: every listener serves HTTPS (ALPN h2 and http/1.1 where the
    // adapter has HTTP/2); main() refuses them on an adapter without CWSGI_CAP_TLS.
    cli.add_option("--certfile", cfg.certfile,
                   "TLS certificate chain (PEM); with --keyfile, every listener serves HTTPS")
        ->type_name("FILE");
    cli.add_option("--keyfile", cfg.keyfile, "TLS private key (PEM) for --certfile")->type_name("FILE");

    // ---- server mechanics ----
    cli.add_flag("--preload", cfg.preload, "Load the app in the master before forking the workers (copy-on-write)");
    cli.add_flag("--reload", cfg.reload, "Start a new generation of workers when the app's .so changes (development)");
    cli.add_option("-p,--pid", cfg.pidfile, "Write the master's PID to this file")->type_name("FILE");
    cli.add_option("-u,--user", cfg.user, "Switch the workers to this user (name or uid) after binding")
        ->type_name("USER");
    cli.add_option("-g,--group", cfg.group, "Switch the workers to this group (name or gid) after binding")
        ->type_name("GROUP");
    cli.add_option("--chdir", cfg.chdir, "Change to this directory before loading the app")->type_name("DIR");
    cli.add_option("-m,--umask", raw.umask,
                   "File mode creation mask of the server, as gunicorn reads it: 0o22, 022 or 18")
        ->type_name(kTypeMode);
    cli.add_option("-n,--name", cfg.proc_name, "Base of the process titles: NAME: master, NAME: worker 3")
        ->type_name("NAME")
        ->capture_default_str();
    // Composition (docs/composition.md): both load a middleware from the build or install tree
    // as the app and hand it the real app(s) through its environment variables.
    cli.add_flag("--lint{warn}", raw.lint,
                 "Wrap the app in cwsgi-lint: --lint or --lint=warn logs spec violations, --lint=fail also answers 500")
        ->type_name("MODE");
    cli.add_option("--mount", raw.mounts,
                   "Serve APP.so under PREFIX (repeatable; '/' is the fallback): PREFIX=APP.so, longest prefix wins")
        ->type_name("PREFIX=APP")
        ->allow_extra_args(false);
    cli.add_option("-e,--env", raw.env, "Set an environment variable in the master before the app loads; repeatable")
        ->type_name(kTypeEnv)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

    // ---- logging ----
    cli.add_option("--access-logfile", cfg.access_logfile,
                   "Access log file in Apache combined format; '-' is stdout (default: off)")
        ->type_name("FILE");
    cli.add_option("--error-logfile,--log-file", cfg.error_logfile, "Error log file; '-' is stderr")
        ->type_name("FILE")
        ->capture_default_str();
    cli.add_option("--log-level", raw.log_level, "Error log level")
        ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical"}))
        ->capture_default_str();

    // ---- what to do (command line only) ----
    cli.add_flag("--check,--check-config", raw.check,
                 "Load the app, run init, and worker_start in a scratch process; print what it declares, exit")
        ->configurable(false);
    cli.add_flag("--print-config", raw.print_config, "Print the resolved configuration as a TOML file for -c, and exit")
        ->configurable(false);
    cli.add_flag("--list-adapters", raw.list_adapters,
                 "Print one line per adapter: name, built|missing, capabilities (hex)")
        ->configurable(false);
    cli.add_flag("-v,--version", raw.version, "Print the version and exit")->configurable(false);
}

// Checks and converts what add_options() collected. False with `error` on a bad value.
bool finish(const Raw &raw, const std::string &base_dir, Invocation &out, std::string &error)
{
    Config &cfg = out.config;
    if (!core::parse_worker_class(raw.worker_class, cfg.worker_class)) {
        error = fmt::format("--worker-class: unknown worker class '{}'", raw.worker_class);
        return false;
    }
    if (!parse_size(raw.stack_size, cfg.stack_size) || cfg.stack_size < 64 * 1024 ||
        cfg.stack_size > 64 * 1024 * 1024) {
        error = fmt::format("--stack-size: '{}' is not a size from 64k to 64m", raw.stack_size);
        return false;
    }
    if (!parse_size(raw.max_worker_memory, cfg.max_worker_rss)) {
        error = fmt::format("--max-worker-memory: '{}' is not a size (bytes, or a number with k, m or g)",
                            raw.max_worker_memory);
        return false;
    }
    if (!raw.umask.empty() && !parse_umask(raw.umask, cfg.umask)) {
        error = fmt::format("--umask: '{}' is not a mode from 0 to 0o777 (write 0o22, 022 or 18)", raw.umask);
        return false;
    }
    if (!cfg.user.empty() && !known_user(cfg.user)) {
        error = fmt::format("--user: no such user '{}'", cfg.user);
        return false;
    }
    if (!cfg.group.empty() && !known_group(cfg.group)) {
        error = fmt::format("--group: no such group '{}'", cfg.group);
        return false;
    }
    if (!cfg.chdir.empty()) {
        cfg.chdir = absolute_from(base_dir, cfg.chdir);
        struct stat st {};
        if (::stat(cfg.chdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            error = fmt::format("--chdir: '{}' is not a directory", cfg.chdir);
            return false;
        }
    }
    std::vector<std::string> env = raw.env;
    if (!compose(raw, out, env, error)) return false;
    cfg.env.clear();
    for (const std::string &kv : env) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            error = fmt::format("--env: '{}' is not KEY=VALUE", kv);
            return false;
        }
        cfg.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    cfg.worker_timeout_ms = to_ms(raw.timeout);
    cfg.client_timeout_ms = to_ms(raw.client_timeout);
    cfg.graceful_timeout_ms = to_ms(raw.graceful_timeout);
    cfg.keepalive_ms = to_ms(raw.keep_alive);
    cfg.request_deadline_ms = to_ms(raw.harakiri);
    cfg.limits.request_body = raw.limit_request_body > 0 ? raw.limit_request_body : -1;
    cfg.log_level = level_of(raw.log_level);
    while (!cfg.script_name.empty() && cfg.script_name.back() == '/') {
        cfg.script_name.pop_back();
    }
    if (!cfg.script_name.empty() && cfg.script_name.front() != '/') {
        error = "--script-name: the mount point must start with '/'";
        return false;
    }
    if (cfg.certfile.empty() != cfg.keyfile.empty()) {
        error = "--certfile and --keyfile go together";
        return false;
    }
    if (raw.version) {
        out.action = Action::version;
    } else if (raw.list_adapters) {
        out.action = Action::list_adapters;
    } else if (raw.print_config) {
        out.action = Action::print_config;
    } else if (raw.check) {
        out.action = Action::check;
    }
    return true;
}

// Ends every usage error but the named gunicorn flags, whose message already says what to do.
constexpr const char *kSeeHelp = " (see cwsgi-serve --help)";

// A CLI11 message as one line ("The following argument was not expected: x").
std::string one_line(std::string s)
{
    std::replace(s.begin(), s.end(), '\n', ' ');
    while (!s.empty() && s.back() == ' ') {
        s.pop_back();
    }
    return s;
}

std::string quote(const std::string &s)
{
    std::ostringstream out;
    out << toml::value<std::string>(s);
    return out.str();
}

std::string seconds(uint32_t ms) { return fmt::format("{}", ms / 1000.0); }

} // namespace

std::string adapter_list()
{
    std::string out;
    for (const core::AdapterOps *a = core::adapter_table(); a->name; ++a) {
        out += fmt::format("  {:<11} {}{}\n", a->name, a->summary,
                           a->built ? "" : fmt::format(" [not available: {}]", a->missing_reason));
    }
    return out;
}

bool parse_invocation(const std::vector<std::string> &args, const std::string &base_dir, Invocation &out,
                      std::string &error)
{
    out = Invocation{};
    Raw raw;
    CLI::App cli{"cwsgi-serve: serve a CWSGI application (app.so) over HTTP", "cwsgi-serve"};
    // Unknown words are kept, not thrown, so that a gunicorn flag can be named as such below.
    cli.allow_extras(true);
    add_options(cli, out, raw);
    CLI::Option *config_opt = cli.set_config(
        "-c,--config", "", "Read settings from this TOML file (docs/deployment.md); the command line wins over it");
    config_opt->type_name("FILE")->transform([base_dir](std::string path) { return absolute_from(base_dir, path); },
                                             "");
    cli.config_formatter(std::make_shared<TomlConfig>(&cli, &out.config.app_settings));
    cli.footer("Adapters:\n" + adapter_list() +
               "\nSignals to the master, as in gunicorn: TERM stops gracefully (in-flight requests finish within\n"
               "--graceful-timeout), INT and QUIT quickly; HUP reloads (new workers, the .so and -c file read\n"
               "again), TTIN/TTOU add or retire a worker, USR1 reopens the logs, USR2 upgrades the binary.\n"
               "Docs: docs/deployment.md; the spec: spec/README.md");

    std::vector<std::string> words(args.rbegin(), args.rend()); // CLI11 takes them last first
    try {
        cli.parse(words);
    } catch (const CLI::CallForHelp &) {
        out.action = Action::help;
        out.help = cli.help();
        return true;
    } catch (const CLI::CallForAllHelp &) {
        out.action = Action::help;
        out.help = cli.help("", CLI::AppFormatMode::All);
        return true;
    } catch (const GunicornGapError &e) {
        error = e.what();
        return false;
    } catch (const CLI::ParseError &e) {
        error = one_line(e.what()) + kSeeHelp;
        return false;
    }
    // remaining() keeps a "--" (the end of the options) that CLI11 itself accepts.
    std::vector<std::string> extra = cli.remaining();
    extra.erase(std::remove(extra.begin(), extra.end(), "--"), extra.end());
    for (const std::string &w : extra) {
        if (w.size() < 2 || w[0] != '-') continue;
        std::string name = w.substr(w[1] == '-' ? 2 : 1);
        name = name.substr(0, name.find('='));
        if (const char *why = gunicorn_gap(name)) {
            error =
                fmt::format("{} is a gunicorn flag that cwsgi-serve does not have: {}", w.substr(0, w.find('=')), why);
            return false;
        }
    }
    if (!extra.empty()) {
        error = fmt::format("unexpected argument '{}'{}", extra.front(), kSeeHelp);
        return false;
    }
    if (config_opt->count() > 0) out.config.config_file = config_opt->as<std::string>();
    if (!finish(raw, base_dir, out, error)) {
        error += kSeeHelp;
        return false;
    }
    return true;
}

std::string config_to_toml(const Invocation &inv)
{
    const Config &c = inv.config;
    std::string s = "# cwsgi-serve --print-config: the resolved configuration; cwsgi-serve -c reads it back.\n";
    const auto line = [&s](const char *key, const std::string &value) { s += fmt::format("{} = {}\n", key, value); };
    const auto text = [&](const char *key, const std::string &value, const char *unset) {
        if (value.empty()) {
            s += fmt::format("# {}: {}\n", key, unset);
        } else {
            line(key, quote(value));
        }
    };
    const auto list = [](const std::vector<std::string> &items) {
        std::string l;
        for (const std::string &i : items) {
            l += (l.empty() ? "" : ", ") + quote(i);
        }
        return "[" + l + "]";
    };
    text("wsgi_app", inv.app_path, "none given");
    line("adapter", quote(c.adapter));
    if (c.binds.empty()) {
        s += "# bind: 127.0.0.1:8000\n";
    } else {
        line("bind", list(c.binds));
    }
    s += "\n# worker processes\n";
    line("workers", std::to_string(c.workers));
    line("worker_class", quote(!c.worker_class ? "auto" : core::worker_class_name(*c.worker_class)));
    if (c.threads_given) {
        line("threads", std::to_string(c.threads));
    } else {
        // Not given: written as a comment, since a given --threads N > 1 turns the sync default
        // into gthread (THR-10) and the file must read back to the same choice.
        s += "# threads: " + std::to_string(c.threads) + "\n";
    }
    if (c.loop_threads == 0) {
        s += "# loop_threads: the adapter's choice\n";
    } else {
        line("loop_threads", std::to_string(c.loop_threads));
    }
    line("stack_size", std::to_string(c.stack_size));
    line("timeout", seconds(c.worker_timeout_ms));
    line("graceful_timeout", seconds(c.graceful_timeout_ms));
    line("max_requests", std::to_string(c.max_requests));
    line("max_requests_jitter", std::to_string(c.max_requests_jitter));
    line("harakiri", seconds(c.request_deadline_ms));
    line("max_worker_memory", std::to_string(c.max_worker_rss));
    s += "\n# connections and requests\n";
    line("keep_alive", seconds(c.keepalive_ms));
    line("client_timeout", seconds(c.client_timeout_ms));
    line("limit_request_body", std::to_string(c.limits.request_body < 0 ? 0 : c.limits.request_body));
    line("limit_request_line", std::to_string(c.limits.request_line));
    line("limit_request_fields", std::to_string(c.limits.request_fields));
    line("limit_request_field_size", std::to_string(c.limits.request_field_size));
    text("script_name", c.script_name, "none (the app is mounted at the root)");
    text("certfile", c.certfile, "none (plain HTTP)");
    text("keyfile", c.keyfile, "none");
    s += "\n# server mechanics\n";
    line("preload", c.preload ? "true" : "false");
    line("reload", c.reload ? "true" : "false");
    text("pid", c.pidfile, "none");
    text("user", c.user, "unchanged");
    text("group", c.group, "unchanged");
    text("chdir", c.chdir, "unchanged");
    if (c.umask < 0) {
        s += "# umask: unchanged\n";
    } else {
        line("umask", fmt::format("0o{:03o}", c.umask));
    }
    line("name", quote(c.proc_name));
    std::vector<std::string> env;
    for (const auto &[k, v] : c.env) {
        env.push_back(k + "=" + v);
    }
    if (env.empty()) {
        s += "# env: none\n";
    } else {
        line("env", list(env));
    }
    s += "\n# logging\n";
    text("access_logfile", c.access_logfile, "off");
    line("error_logfile", quote(c.error_logfile));
    line("log_level", quote(level_name(c.log_level)));
    if (!c.app_settings.empty()) {
        s += "\n# the app's own settings\n[app]\n";
        for (const auto &[k, v] : c.app_settings) {
            line(quote(k).c_str(), quote(v));
        }
    }
    return s;
}

} // namespace cwsgi::serve
