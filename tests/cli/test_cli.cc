// test_cli.cc: cwsgi-serve's command line and -c file, driven through the built binary.
//
// Each case runs cwsgi-serve with posix_spawn (bounded: 20 s, then SIGKILL) and reads its exit
// status, standard output and standard error. --print-config shows the resolved Config as
// TOML, so "a flag lands in Config" is checked as "its key shows the value". The -c example of
// docs/deployment.md is extracted from the doc and parsed here, so it cannot rot.
#include "cmocka.hh"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <regex>

extern char **environ;

namespace {

struct Result {
    int status = -1; // exit code, or -1 when it did not exit normally in time
    std::string out, err;
};

std::string g_dir; // this run's scratch directory

std::string serve_bin()
{
    const char *s = std::getenv("CWSGI_SERVE");
    return s ? s : "";
}

std::string fixture(const char *name)
{
    const char *dir = std::getenv("CWSGI_BUILD_DIR");
    return std::string(dir ? dir : ".") + "/tests/fixtures/" + name;
}

std::string source_file(const char *rel)
{
    const char *dir = std::getenv("CWSGI_SOURCE_DIR");
    return std::string(dir ? dir : ".") + "/" + rel;
}

std::string write_file(const std::string &name, const std::string &text)
{
    std::string path = g_dir + "/" + name;
    std::ofstream(path) << text;
    return path;
}

// Runs cwsgi-serve with `args` and the environment of this test plus `env` ("K=V"), without
// WEB_CONCURRENCY and SCRIPT_NAME unless given, so that the caller's shell cannot change a result.
Result run(const std::vector<std::string> &args, const std::vector<std::string> &env = {})
{
    Result r;
    std::vector<std::string> argv_s{serve_bin()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (std::string &a : argv_s) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char **e = environ; *e; ++e) {
        if (std::strncmp(*e, "WEB_CONCURRENCY=", 16) != 0 && std::strncmp(*e, "SCRIPT_NAME=", 12) != 0) {
            env_s.emplace_back(*e);
        }
    }
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char *> envp;
    for (std::string &e : env_s) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return r;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
        ::close(out[0]);
        ::close(err[0]);
        return r;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    bool killed = false;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(pid, SIGKILL);
            killed = true;
            break;
        }
        if (::poll(fds, 2, static_cast<int>(left.count())) < 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (pollfd &p : fds) {
        if (p.fd >= 0) ::close(p.fd);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.status = !killed && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

size_t lines(const std::string &text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

// --print-config must show `line` (a whole line).
void expect_line(const Result &r, const std::string &line)
{
    if (r.status != 0 || !has("\n" + r.out, "\n" + line + "\n")) {
        fail_msg("expected the line '%s' (exit %d)\nstdout:\n%s\nstderr:\n%s", line.c_str(), r.status, r.out.c_str(),
                 r.err.c_str());
    }
}

// A usage error: exit 2, one line on stderr that contains `part`.
void expect_usage_error(const Result &r, const std::string &part)
{
    if (r.status != 2 || lines(r.err) != 1 || !has(r.err, part) || r.err.rfind("cwsgi-serve: ", 0) != 0) {
        fail_msg("expected exit 2 and one line with '%s'; got exit %d, stderr:\n%s", part.c_str(), r.status,
                 r.err.c_str());
    }
}

int setup(void **)
{
    char tmpl[] = "/tmp/cwsgi-cli-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return -1;
    g_dir = tmpl;
    return serve_bin().empty() ? -1 : 0;
}

int teardown(void **)
{
    std::string cmd = "rm -rf '" + g_dir + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : -1;
}

void test_cli__every_flag_lands_in_config(void **)
{
    Result r = run({"--print-config",
                    "x.so",
                    "--adapter",
                    "microhttpd",
                    "-b",
                    "127.0.0.1:9001",
                    "--bind",
                    "unix:/tmp/a.sock",
                    "--workers",
                    "3",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "6",
                    "--loop-threads",
                    "2",
                    "--stack-size",
                    "128k",
                    "--timeout",
                    "12.5",
                    "--graceful-timeout",
                    "7",
                    "--max-requests",
                    "1000",
                    "--max-requests-jitter",
                    "50",
                    "--harakiri",
                    "20",
                    "--max-worker-memory",
                    "512m",
                    "--keep-alive",
                    "3",
                    "--client-timeout",
                    "4",
                    "--limit-request-body",
                    "1048576",
                    "--limit-request-line",
                    "2048",
                    "--limit-request-fields",
                    "50",
                    "--limit-request-field-size",
                    "4096",
                    "--script-name",
                    "/api/",
                    "--preload",
                    "--reload",
                    "--pid",
                    "/tmp/m.pid",
                    "--user",
                    "0",
                    "--group",
                    "0",
                    "--chdir",
                    "/tmp",
                    "--umask",
                    "0o27",
                    "--name",
                    "scorer",
                    "--env",
                    "MODEL=/srv/m.bin",
                    "--env",
                    "DEBUG=",
                    "--access-logfile",
                    "-",
                    "--error-logfile",
                    "/tmp/e.log",
                    "--log-level",
                    "debug"});
    for (const char *line : {"wsgi_app = 'x.so'",
                             "adapter = 'microhttpd'",
                             "bind = ['127.0.0.1:9001', 'unix:/tmp/a.sock']",
                             "workers = 3",
                             "worker_class = 'gthread'",
                             "threads = 6",
                             "loop_threads = 2",
                             "stack_size = 131072",
                             "timeout = 12.5",
                             "graceful_timeout = 7",
                             "max_requests = 1000",
                             "max_requests_jitter = 50",
                             "harakiri = 20",
                             "max_worker_memory = 536870912",
                             "keep_alive = 3",
                             "client_timeout = 4",
                             "limit_request_body = 1048576",
                             "limit_request_line = 2048",
                             "limit_request_fields = 50",
                             "limit_request_field_size = 4096",
                             "script_name = '/api'",
                             "preload = true",
                             "reload = true",
                             "pid = '/tmp/m.pid'",
                             "user = '0'",
                             "group = '0'",
                             "chdir = '/tmp'",
                             "umask = 0o027",
                             "name = 'scorer'",
                             "env = ['MODEL=/srv/m.bin', 'DEBUG=']",
                             "access_logfile = '-'",
                             "error_logfile = '/tmp/e.log'",
                             "log_level = 'debug'"}) {
        expect_line(r, line);
    }
}

void test_cli__defaults_and_short_flags(void **)
{
    Result r = run({"--print-config", "x.so"});
    for (const char *line : {"workers = 1", "timeout = 30", "client_timeout = 30", "graceful_timeout = 30",
                             "keep_alive = 2", "max_requests = 0", "harakiri = 0", "max_worker_memory = 0",
                             "preload = false", "name = 'cwsgi'", "# umask: unchanged", "# user: unchanged",
                             "# pid: none", "worker_class = 'auto'", "log_level = 'info'", "error_logfile = '-'"}) {
        expect_line(r, line);
    }
    // gunicorn's short forms.
    r = run({"--print-config",
             "x.so",
             "-w",
             "5",
             "-t",
             "0",
             "-p",
             "/tmp/p",
             "-u",
             "0",
             "-g",
             "0",
             "-m",
             "022",
             "-n",
             "n1",
             "-e",
             "A=1",
             "-k",
             "gevent"});
    for (const char *line : {"workers = 5", "timeout = 0", "pid = '/tmp/p'", "user = '0'", "group = '0'",
                             "umask = 0o022", "name = 'n1'", "env = ['A=1']", "worker_class = 'gevent'"}) {
        expect_line(r, line);
    }
    // "--" ends the options, as scripts write it before the app.
    r = run({"--print-config", "-w", "2", "--", "x.so"});
    expect_line(r, "wsgi_app = 'x.so'");
    expect_line(r, "workers = 2");
    // gunicorn's spellings: --log-file, --limit-request-field_size (--check-config: see below).
    r = run({"--print-config", "x.so", "--log-file", "/tmp/l", "--limit-request-field_size", "100"});
    expect_line(r, "error_logfile = '/tmp/l'");
    expect_line(r, "limit_request_field_size = 100");
}

void test_cli__umask_as_gunicorn_reads_it(void **)
{
    const std::pair<const char *, const char *> cases[] = {
        {"0o22", "umask = 0o022"}, {"022", "umask = 0o022"}, {"18", "umask = 0o022"},
        {"0x12", "umask = 0o022"}, {"0", "umask = 0o000"},   {"0o777", "umask = 0o777"},
    };
    for (const auto &[given, line] : cases) {
        expect_line(run({"--print-config", "x.so", "--umask", given}), line);
    }
    for (const char *bad : {"0o1000", "abc", "08", "-1"}) {
        expect_usage_error(run({"x.so", "--umask", bad}), "--umask");
    }
}

void test_cli__web_concurrency(void **)
{
    expect_line(run({"--print-config", "x.so"}, {"WEB_CONCURRENCY=6"}), "workers = 6");
    expect_line(run({"--print-config", "x.so", "-w", "2"}, {"WEB_CONCURRENCY=6"}), "workers = 2");
    std::string file = write_file("wc.toml", "workers = 3\n");
    expect_line(run({"--print-config", "x.so", "-c", file}, {"WEB_CONCURRENCY=6"}), "workers = 3");
}

void test_cli__file_and_command_line(void **)
{
    std::string file = write_file("app.toml",
                                  "wsgi_app = 'from-file.so'\n"
                                  "bind = ['127.0.0.1:7001', '127.0.0.1:7002']\n"
                                  "workers = 4\n"
                                  "graceful-timeout = 9\n" // dashes work as well as underscores
                                  "keep_alive = 1.5\n"
                                  "preload = true\n"
                                  "umask = 0o022\n"
                                  "max_worker_memory = '1g'\n"
                                  "env = { MODEL = '/srv/model.bin', N = 3 }\n"
                                  "preload_app = true\n" // gunicorn's setting name
                                  "proc_name = 'from-file'\n");
    Result r = run({"--print-config", "-c", file});
    for (const char *line :
         {"wsgi_app = 'from-file.so'", "bind = ['127.0.0.1:7001', '127.0.0.1:7002']", "workers = 4",
          "graceful_timeout = 9", "keep_alive = 1.5", "preload = true", "umask = 0o022",
          "max_worker_memory = 1073741824", "env = ['MODEL=/srv/model.bin', 'N=3']", "name = 'from-file'"}) {
        expect_line(r, line);
    }
    // The command line wins, key by key; a repeatable flag replaces the file's list (gunicorn).
    r = run({"--print-config", "-c", file, "cli.so", "-w", "2", "-b", "127.0.0.1:7003", "-e", "X=1"});
    expect_line(r, "wsgi_app = 'cli.so'");
    expect_line(r, "workers = 2");
    expect_line(r, "bind = ['127.0.0.1:7003']");
    expect_line(r, "env = ['X=1']");
    expect_line(r, "graceful_timeout = 9");
    // env as a list, and a relative -c taken from the starting directory.
    write_file("list.toml", "env = ['A=1', 'B=x=y']\n");
    char cwd[4096];
    assert_non_null(::getcwd(cwd, sizeof cwd));
    assert_int_equal(::chdir(g_dir.c_str()), 0);
    r = run({"--print-config", "x.so", "-c", "list.toml"});
    assert_int_equal(::chdir(cwd), 0);
    expect_line(r, "env = ['A=1', 'B=x=y']");
}

void test_cli__file_errors_name_key_and_line(void **)
{
    const std::pair<const char *, const char *> cases[] = {
        {"threads = 2\nnope = 1\n", ":2: unknown key 'nope'"},
        {"threads = 2\nworkers = 'four'\n", ":2: workers: expected an integer, got a string"},
        {"timeout = 'x'\n", ":1: timeout: expected a number, got a string"},
        {"preload = 1\n", ":1: preload: expected a boolean (true or false), got an integer"},
        {"bind = 8000\n", ":1: bind: expected a string or a list of strings, got an integer"},
        {"threads = 2\nworkers = \n", ":2:"},
        {"check = true\n", ":1: check is for the command line only"},
        {"config = 'other.toml'\n", ":1: config is for the command line only"},
        {"app = 3\n", ":1: app: expected a table ([app]), got an integer"},
        {"[server]\nworkers = 2\n", ":1: unknown key 'server'"},
        {"workers = 0\n", "--workers"},
    };
    for (const auto &[text, part] : cases) {
        std::string file = write_file("bad.toml", text);
        Result r = run({"--print-config", "x.so", "-c", file});
        expect_usage_error(r, part);
        if (std::strchr(part, ':') == part) assert_true(has(r.err, file + part));
    }
    expect_usage_error(run({"x.so", "-c", g_dir + "/missing.toml"}), "missing.toml");
}

void test_cli__app_table(void **)
{
    std::string file = write_file("appt.toml", "workers = 2\n"
                                               "[app]\n"
                                               "zeta = 'last-key-first'\n"
                                               "model.path = '/srv/m.bin'\n"
                                               "model.batch = 32\n"
                                               "debug = true\n");
    Result r = run({"--print-config", "x.so", "-c", file});
    // Flattened, values as strings, in the order of the file.
    const std::string expected = "[app]\n'zeta' = 'last-key-first'\n'model.path' = '/srv/m.bin'\n"
                                 "'model.batch' = '32'\n'debug' = 'true'\n";
    if (r.status != 0 || !has(r.out, expected)) fail_msg("[app] printed as:\n%s\n%s", r.out.c_str(), r.err.c_str());
}

void test_cli__print_config_reads_back(void **)
{
    Result first =
        run({"--print-config", "x.so", "-w", "3", "-b", "127.0.0.1:1", "--umask", "0o7", "-e", "A=b c", "--timeout",
             "2.25", "--chdir", "/", "--script-name", "/m", "-c", write_file("rt.toml", "[app]\nk = 'v'\n")});
    assert_int_equal(first.status, 0);
    std::string file = write_file("printed.toml", first.out);
    Result second = run({"--print-config", "-c", file});
    assert_int_equal(second.status, 0);
    assert_string_equal(first.out.c_str(), second.out.c_str());
}

void test_cli__bad_command_line_exits_2(void **)
{
    const std::vector<std::pair<std::vector<std::string>, const char *>> cases = {
        {{"--no-such-flag", "x.so"}, "--no-such-flag"},
        {{"x.so", "y.so"}, "unexpected argument 'y.so'"},
        {{"x.so", "-w"}, "--workers"},
        {{"x.so", "-w", "many"}, "--workers"},
        {{"x.so", "--threads", "0"}, "--threads"},
        {{"x.so", "--timeout", "-1"}, "--timeout"},
        {{"x.so", "--client-timeout", "0"}, "--client-timeout"},
        {{"x.so", "--max-worker-memory", "lots"}, "--max-worker-memory"},
        {{"x.so", "--stack-size", "1k"}, "--stack-size"},
        {{"x.so", "-k", "eventlet"}, "--worker-class"},
        {{"x.so", "--log-level", "loud"}, "--log-level"},
        {{"x.so", "-u", "no-such-user-cwsgi"}, "no such user 'no-such-user-cwsgi'"},
        {{"x.so", "-g", "no-such-group-cwsgi"}, "no such group 'no-such-group-cwsgi'"},
        {{"x.so", "--chdir", "/no/such/dir"}, "--chdir"},
        {{"x.so", "-e", "NOEQUALS"}, "--env: 'NOEQUALS' is not KEY=VALUE"},
        {{"x.so", "-e", "=v"}, "--env"},
        {{"x.so", "--script-name", "api"}, "--script-name"},
        {{"x.so", "--adapter", "nginx"}, "unknown adapter 'nginx'"},
        {{}, "no app given"},
    };
    for (const auto &[args, part] : cases) {
        Result r = run(args);
        if (std::strcmp(part, "unknown adapter 'nginx'") == 0) {
            // This one lists the adapters after its line.
            if (r.status != 2 || !has(r.err, part)) fail_msg("adapter: exit %d: %s", r.status, r.err.c_str());
            continue;
        }
        expect_usage_error(r, part);
        if (!has(r.err, "see cwsgi-serve --help")) fail_msg("no pointer to --help: %s", r.err.c_str());
    }
    Result help = run({"--help"});
    assert_int_equal(help.status, 0);
    assert_true(has(help.out, "--client-timeout"));
    assert_true(has(help.out, "Adapters:"));
    assert_int_equal(run({"--version"}).status, 0);
}

void test_cli__gunicorn_flags_are_named(void **)
{
    const std::vector<std::vector<std::string>> cases = {
        {"--daemon"},
        {"-D"},
        {"--worker-connections", "1000"},
        {"--backlog=64"},
        {"--statsd-host", "127.0.0.1:8125"},
        {"--forwarded-allow-ips", "*"},
        {"--proxy-protocol"},
        {"--ca-certs", "ca.pem"},
        {"--ciphers", "ALL"},
        {"--paste", "dev.ini"},
        {"--log-config", "log.ini"},
        {"--log-syslog"},
        {"--reuse-port"},
        {"-R"},
    };
    for (const auto &flag : cases) {
        std::vector<std::string> args = flag;
        args.push_back("x.so");
        Result r = run(args);
        std::string name = flag[0].substr(0, flag[0].find('='));
        expect_usage_error(r, name + " is a gunicorn flag that cwsgi-serve does not have: ");
        // The message says what to do instead, not "see --help".
        assert_false(has(r.err, "see cwsgi-serve --help"));
    }
    for (const char *setting : {"daemon = true", "worker_connections = 10", "statsd_host = 'x'", "ciphers = 'ALL'"}) {
        std::string file = write_file("gap.toml", std::string(setting) + "\n");
        std::string key(setting, std::strcspn(setting, " "));
        expect_usage_error(run({"x.so", "-c", file}),
                           ":1: " + key + " is a gunicorn setting that cwsgi-serve does not have: ");
    }
}

void test_cli__tls_flags(void **)
{
    // gunicorn's --certfile and --keyfile: together, and only on an adapter that serves TLS.
    expect_usage_error(run({"--certfile", "c.pem", "x.so"}), "--certfile and --keyfile go together");
    expect_usage_error(run({"--keyfile", "k.pem", "x.so"}), "--certfile and --keyfile go together");
    expect_usage_error(run({"--adapter", "microhttpd", "--certfile", "c.pem", "--keyfile", "k.pem", "x.so"}),
                       "need an adapter that serves TLS (h2o); microhttpd does not");
    std::string cert = g_dir + "/c.pem";
    expect_line(run({"--print-config", "--certfile", cert, "--keyfile", g_dir + "/k.pem", "x.so"}),
                "certfile = '" + cert + "'");
}

void test_cli__check_runs_worker_start(void **) // rule: LIFE-WORKER-2
{
    Result r = run({"--check", fixture("fixture_worker_start_fails.so")});
    if (r.status != 3 || !has(r.err, "cannot reach the feature store") || lines(r.err) != 1) {
        fail_msg("worker_start failure: exit %d, stderr:\n%s", r.status, r.err.c_str());
    }
    r = run({"--check-config", fixture("fixture_good.so")});
    assert_int_equal(r.status, 0);
    assert_true(has(r.out, "worker_start succeeds"));
    // An app whose init fails still exits 4 before any worker is tried.
    assert_int_equal(run({"--check", fixture("fixture_init_fails.so")}).status, 4);
}

void test_cli__worker_class_choice(void **) // rule: THR-10
{
    // --check prints the execution mode and why, and the capabilities the app gets.
    auto check = [](const std::vector<std::string> &flags, const char *mode, bool threads_cap) {
        std::vector<std::string> args = {"--check"};
        args.insert(args.end(), flags.begin(), flags.end());
        args.push_back(fixture("fixture_good.so"));
        Result r = run(args);
        const std::string want = std::string("execution:      ") + mode;
        if (r.status != 0 || !has(r.out, want)) {
            fail_msg("%s: exit %d, want '%s' in:\n%s%s", flags.empty() ? "(none)" : flags.back().c_str(), r.status,
                     want.c_str(), r.out.c_str(), r.err.c_str());
        }
        const size_t offers = r.out.find("(offers: ");
        assert_true(offers != std::string::npos);
        const std::string caps = r.out.substr(offers, r.out.find('\n', offers) - offers);
        if (has(caps, "threads") != threads_cap) fail_msg("capabilities: %s", caps.c_str());
    };
    // The forking adapter: sync is the default for an app without the cooperative promise,
    // as gunicorn's default worker class, and then CWSGI_CAP_THREADS is not offered.
    check({"--adapter", "forking"}, "sync (the app does not declare", false);
    check({"--adapter", "forking", "-k", "sync"}, "sync (chosen with -k sync", false);
    check({"--adapter", "forking", "-k", "gthread"}, "threads (chosen with -k gthread)", true);
    // gunicorn: --threads N > 1 with the sync worker class is gthread, asked for or not.
    check({"--adapter", "forking", "--threads", "4"}, "threads (--threads 4: gthread", true);
    check({"--adapter", "forking", "-k", "sync", "--threads", "4"}, "threads (-k sync with --threads 4 is gthread",
          true);
    check({"--adapter", "forking", "-k", "sync", "--threads", "1"}, "sync (chosen with -k sync", false);
    // An event-loop adapter: threads by default; -k sync is one app thread per worker.
    Result list = run({"--list-adapters"});
    if (has(list.out, "microhttpd\tbuilt")) {
        check({"--adapter", "microhttpd"}, "threads (the app does not declare", true);
        check({"--adapter", "microhttpd", "-k", "sync"},
              "sync (chosen with -k sync: the microhttpd adapter runs it on one app thread", false);
    }
    expect_line(run({"--print-config", "-k", "sync", "x.so"}), "worker_class = 'sync'");
    // A default --threads is printed as a comment, so that the file reads back to sync.
    expect_line(run({"--print-config", "x.so"}), "# threads: 4");
    expect_line(run({"--print-config", "--threads", "1", "x.so"}), "threads = 1");
}

void test_cli__env_reaches_the_app(void **)
{
    // The fixture's init creates the file named by CWSGI_FIXTURE_INIT_MARK: -e must be set
    // before init runs, from the command line and from the file alike.
    std::string mark = g_dir + "/mark-cli";
    assert_int_equal(run({"--check", "-e", "CWSGI_FIXTURE_INIT_MARK=" + mark, fixture("fixture_good.so")}).status, 0);
    struct stat st {};
    assert_int_equal(::stat(mark.c_str(), &st), 0);
    std::string mark2 = g_dir + "/mark-file";
    std::string file = write_file("env.toml", "env = { CWSGI_FIXTURE_INIT_MARK = '" + mark2 + "' }\n");
    assert_int_equal(run({"--check", "-c", file, fixture("fixture_good.so")}).status, 0);
    assert_int_equal(::stat(mark2.c_str(), &st), 0);
    // Without -e nothing is created (the mark comes from -e, not from this test's environment).
    std::string mark3 = g_dir + "/mark-none";
    assert_int_equal(run({"--check", fixture("fixture_good.so")}).status, 0);
    assert_int_not_equal(::stat(mark3.c_str(), &st), 0);
}

void test_cli__chdir_before_the_app_loads(void **)
{
    // A relative app path is taken from --chdir, as gunicorn's --chdir does for modules.
    std::string dir = std::string(std::getenv("CWSGI_BUILD_DIR") ? std::getenv("CWSGI_BUILD_DIR") : ".") + "/tests";
    Result r = run({"--check", "--chdir", dir, "fixtures/fixture_good.so"});
    if (r.status != 0) fail_msg("--chdir: exit %d: %s", r.status, r.err.c_str());
}

void test_cli__docs_example_parses(void **)
{
    std::ifstream in(source_file("docs/deployment.md"));
    std::stringstream doc;
    doc << in.rdbuf();
    const std::string text = doc.str();
    size_t marker = text.find("<!-- tests/cli: example config -->");
    assert_true(marker != std::string::npos);
    size_t start = text.find("```toml\n", marker);
    assert_true(start != std::string::npos);
    start += 8;
    size_t end = text.find("```", start);
    assert_true(end != std::string::npos);
    std::string file = write_file("example.toml", text.substr(start, end - start));
    // The example's directory, user and group belong to the operator's machine; the command
    // line overrides them (and shows that it wins over the file).
    Result r = run({"--print-config", "-c", file, "--chdir", "/", "-u", "0", "-g", "0"});
    for (const char *line : {"wsgi_app = '/opt/myapp/app.so'", "workers = 4", "preload = true", "umask = 0o022",
                             "max_worker_memory = 1073741824", "chdir = '/'", "user = '0'"}) {
        expect_line(r, line);
    }
    assert_true(has(r.out, "[app]\n"));
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli__every_flag_lands_in_config),
        cmocka_unit_test(test_cli__defaults_and_short_flags),
        cmocka_unit_test(test_cli__umask_as_gunicorn_reads_it),
        cmocka_unit_test(test_cli__web_concurrency),
        cmocka_unit_test(test_cli__file_and_command_line),
        cmocka_unit_test(test_cli__file_errors_name_key_and_line),
        cmocka_unit_test(test_cli__app_table),
        cmocka_unit_test(test_cli__print_config_reads_back),
        cmocka_unit_test(test_cli__bad_command_line_exits_2),
        cmocka_unit_test(test_cli__gunicorn_flags_are_named),
        cmocka_unit_test(test_cli__tls_flags),
        cmocka_unit_test(test_cli__check_runs_worker_start),
        cmocka_unit_test(test_cli__worker_class_choice),
        cmocka_unit_test(test_cli__env_reaches_the_app),
        cmocka_unit_test(test_cli__chdir_before_the_app_loads),
        cmocka_unit_test(test_cli__docs_example_parses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
