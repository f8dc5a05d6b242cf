// test_loader.cc: App::load against deliberately broken fixtures (tests/fixtures), and
// `cwsgi-serve --check` on each: one line that says what is wrong, non-zero exit
// (ABI-LOAD-*, ABI-VER-*, ABI-STRUCT-*, LIFE-LOAD-2).
#include "cmocka.hh"

#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/app.hh"
#include "core/context.hh"
#include "core/server.hh"

using namespace cwsgi::core;

namespace {

std::string fixture(const char *name)
{
    const char *dir = std::getenv("CWSGI_BUILD_DIR");
    return std::string(dir ? dir : ".") + "/tests/fixtures/" + name;
}

// Loads a fixture and returns the error ("" when it loaded and initialised).
std::string load_error(const char *name, uint64_t caps = 0)
{
    Context ctx(Config{}, "test", caps);
    Context::set_current(&ctx);
    std::string error;
    auto app = App::load(fixture(name), ctx.api(), error);
    if (app && app->init(error) == CWSGI_OK) {
        app->destroy();
        error.clear();
    }
    Context::set_current(nullptr);
    return error;
}

void expect_error(const char *name, const char *needle)
{
    std::string e = load_error(name);
    if (e.find(needle) == std::string::npos) {
        fail_msg("loading %s: expected an error containing '%s', got '%s'", name, needle, e.c_str());
    }
    assert_true(e.find('\n') == std::string::npos); // one line
}

void test_loader__good(void **) { assert_string_equal(load_error("fixture_good.so").c_str(), ""); }

void test_loader__missing_file(void **) // rule: ABI-LOAD-2
{
    expect_error("does_not_exist.so", "No such file or directory");
}

void test_loader__not_a_shared_object(void **) // rule: ABI-LOAD-2
{
    expect_error("not_an_elf.so", "not a loadable shared object");
}

void test_loader__no_entry_symbol(void **) // rule: ABI-LOAD-1
{
    expect_error("fixture_no_entry.so", "exports no 'cwsgi_app_entry' symbol");
}

void test_loader__wrong_major(void **) // rule: ABI-VER-1, ABI-VER-5
{
    const std::string want = "built for CWSGI ABI 2.x; this server implements ABI 1." +
                             std::to_string(CWSGI_ABI_MINOR) + ": rebuild the app";
    expect_error("fixture_wrong_major.so", want.c_str());
}

void test_loader__newer_minor(void **) // rule: ABI-VER-2, ABI-VER-5
{
    const std::string want =
        "needs CWSGI ABI 1.99; this server implements 1." + std::to_string(CWSGI_ABI_MINOR) + ": upgrade the server";
    expect_error("fixture_newer_minor.so", want.c_str());
}

void test_loader__same_or_older_minor_loads(void **) // rule: ABI-VER-3
{
    // fixture_good declares minor 0; every 1.M server (M >= 0) loads it.
    assert_string_equal(load_error("fixture_good.so").c_str(), "");
}

void test_loader__bad_thread_safety(void **) // rule: ABI-LOAD-6
{
    expect_error("fixture_bad_threads.so", "unknown thread_safety value 7");
}

void test_loader__checks_before_init(void **) // rule: ABI-LOAD-7
{
    std::string mark = "/tmp/cwsgi-init-mark-" + std::to_string(getpid());
    setenv("CWSGI_FIXTURE_INIT_MARK", mark.c_str(), 1);
    struct stat st {};
    for (const char *refused : {"fixture_wrong_major.so", "fixture_newer_minor.so", "fixture_no_handle.so",
                                "fixture_needs_http2.so", "fixture_nonzero_tail.so", "fixture_bad_threads.so"}) {
        unlink(mark.c_str());
        assert_false(load_error(refused).empty());
        if (stat(mark.c_str(), &st) == 0) fail_msg("init ran for the refused app %s", refused);
    }
    unlink(mark.c_str());
    assert_string_equal(load_error("fixture_good.so").c_str(), "");
    assert_int_equal(stat(mark.c_str(), &st), 0); // the mark works: init ran for the good one
    unlink(mark.c_str());
    unsetenv("CWSGI_FIXTURE_INIT_MARK");
}

void test_loader__never_dlclose(void **) // rule: ABI-LOAD-8
{
    assert_false(load_error("fixture_wrong_major.so").empty());
    // The refused app is still mapped: RTLD_NOLOAD finds it without loading it again.
    void *h = dlopen(fixture("fixture_wrong_major.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    dlclose(h); // drops only the reference this test just took
}

void test_loader__entry_refuses(void **) // rule: ABI-LOAD-3
{
    expect_error("fixture_entry_refuses.so", "entry refused this server: CWSGI_E_ABI");
}

void test_loader__no_handle(void **) // rule: ABI-LOAD-4
{
    expect_error("fixture_no_handle.so", "no handle callback");
}

void test_loader__missing_capability(void **) // rule: ABI-LOAD-5
{
    expect_error("fixture_needs_http2.so", "requires capabilities");
    assert_string_equal(load_error("fixture_needs_http2.so", CWSGI_CAP_HTTP2).c_str(), "");
}

void test_loader__nonzero_tail(void **) // rule: ABI-STRUCT-4
{
    expect_error("fixture_nonzero_tail.so", "past the");
}

void test_loader__init_fails(void **) // rule: LIFE-LOAD-2
{
    expect_error("fixture_init_fails.so", "model file /nonexistent/model.bin is missing");
}

void test_loader__v10_app_loads(void **) // rule: ABI-VER-2, ABI-STRUCT-1
{
    // Built against the 1.0 header: a 96-byte descriptor, read without touching bytes past it.
    Context ctx(Config{}, "test", 0);
    Context::set_current(&ctx);
    std::string error;
    auto app = App::load(fixture("fixture_v10.so"), ctx.api(), error);
    assert_non_null(app.get());
    assert_int_equal(app->desc().struct_size, offsetof(cwsgi_app_desc, flags));
    assert_int_equal(app->desc().flags, 0);
    assert_false(app->cooperative());
    Context::set_current(nullptr);
}

void test_loader__flags_need_minor_1(void **) // rule: ABI-STRUCT-5
{
    expect_error("fixture_flags_minor0.so", "declares abi_minor 0: declare abi_minor 1");
    expect_error("fixture_unknown_flags.so", "unknown flags 0x80");
    assert_string_equal(load_error("fixture_cooperative.so").c_str(), "");
}

void test_loader__exec_mode_choice(void **) // rule: THR-5
{
    AdapterOps fibers{"fib", "", true, nullptr, 0, nullptr, true};
    AdapterOps nofibers{"nofib", "", true, nullptr, 0, nullptr, false};
    Config auto_cfg;
    std::string note;
    // Auto: cooperative only for a declaring app on an adapter with fibers.
    assert_true(choose_exec_mode(auto_cfg, fibers, true, note) == ExecMode::cooperative);
    assert_true(choose_exec_mode(auto_cfg, fibers, false, note) == ExecMode::threads);
    assert_true(choose_exec_mode(auto_cfg, nofibers, true, note) == ExecMode::threads);
    // -k wins, with a warning note when it overrides the app's (missing) declaration.
    Config k = auto_cfg;
    assert_true(parse_worker_class("gthread", k.worker_class));
    assert_true(choose_exec_mode(k, fibers, true, note) == ExecMode::threads);
    assert_true(parse_worker_class("gevent", k.worker_class));
    assert_true(choose_exec_mode(k, fibers, false, note) == ExecMode::cooperative);
    assert_non_null(std::strstr(note.c_str(), "does not declare"));
    assert_true(choose_exec_mode(k, nofibers, true, note) == ExecMode::threads);
    assert_false(parse_worker_class("eventlet", k.worker_class));
}

void test_loader__sync_mode_choice(void **) // rule: THR-10
{
    AdapterOps inline_sync{"fork", "", true, nullptr, 0, nullptr, true};
    inline_sync.sync = true;
    AdapterOps loop{"loop", "", true, nullptr, 0, nullptr, true};
    Config cfg;
    std::string note;
    // The default on an adapter that runs sync inline, for an app without the promise.
    assert_true(choose_exec_mode(cfg, inline_sync, false, note) == ExecMode::sync);
    assert_true(choose_exec_mode(cfg, inline_sync, true, note) == ExecMode::cooperative);
    assert_true(choose_exec_mode(cfg, inline_sync, false, note, true) == ExecMode::threads); // needs CAP_THREADS
    assert_true(choose_exec_mode(cfg, loop, false, note) == ExecMode::threads);
    // gunicorn: --threads N > 1 makes sync gthread, asked for or the default; --threads 1 does not.
    Config many = cfg;
    many.threads = 4;
    many.threads_given = true;
    assert_true(choose_exec_mode(many, inline_sync, false, note) == ExecMode::threads);
    assert_true(parse_worker_class("sync", many.worker_class));
    assert_true(choose_exec_mode(many, inline_sync, false, note) == ExecMode::threads);
    assert_non_null(std::strstr(note.c_str(), "gthread"));
    many.threads = 1;
    assert_true(choose_exec_mode(many, inline_sync, true, note) == ExecMode::sync);
    // -k sync on an event-loop adapter: sync still (one app thread there, exec::Executor).
    assert_true(choose_exec_mode(many, loop, false, note) == ExecMode::sync);
    assert_non_null(std::strstr(note.c_str(), "one app thread"));
    assert_string_equal(worker_class_name(ExecMode::sync), "sync");
    assert_string_equal(exec_mode_name(ExecMode::sync), "sync");
}

void test_loader__server_info_mode(void **) // rule: LIFE-INFO-2
{
    Config cfg;
    cfg.stack_size = 128 * 1024;
    Context ctx(cfg, "test", 0);
    cwsgi_server_info info{};
    info.struct_size = sizeof info;
    assert_int_equal(ctx.fill_server_info(&info), CWSGI_OK);
    assert_int_equal(info.execution, CWSGI_EXEC_THREADS);
    assert_int_equal(info.stack_size, 0);
    ctx.set_exec_mode(ExecMode::cooperative);
    ctx.set_loop_threads(2);
    assert_int_equal(ctx.fill_server_info(&info), CWSGI_OK);
    assert_int_equal(info.execution, CWSGI_EXEC_COOPERATIVE);
    assert_int_equal(info.loop_threads, 2);
    assert_int_equal(info.stack_size, 128 * 1024);
    // A 1.0 app's smaller struct gets only the 1.0 fields (ABI-STRUCT-2).
    cwsgi_server_info small{};
    small.struct_size = offsetof(cwsgi_server_info, execution);
    small.execution = 77;
    assert_int_equal(ctx.fill_server_info(&small), CWSGI_OK);
    assert_int_equal(small.execution, 77);
}

// A name without a slash is a file in the current directory, the way gunicorn users type it
// (`cwsgi-serve --check hi.so` next to hi.so), never a search of the dynamic loader's path.
void test_loader__bare_name_is_current_directory(void **) // rule: ABI-LOAD-2
{
    char saved[4096];
    assert_non_null(getcwd(saved, sizeof saved));
    std::string dir = fixture("");
    assert_int_equal(chdir(dir.c_str()), 0);
    Context ctx(Config{}, "test", 0);
    Context::set_current(&ctx);
    std::string error;
    auto app = App::load("fixture_good.so", ctx.api(), error);
    std::string good_error = error;
    // libc.so.6 is on the library path of every process but not in this folder: not loaded.
    error.clear();
    auto libc = App::load("libc.so.6", ctx.api(), error);
    Context::set_current(nullptr);
    std::string serve_out;
    int serve_rc = -1;
    if (const char *serve = std::getenv("CWSGI_SERVE")) {
        FILE *p = popen((std::string(serve) + " --check fixture_good.so 2>&1").c_str(), "r");
        assert_non_null(p);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) serve_out.append(buf, n);
        int st = pclose(p);
        serve_rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    assert_int_equal(chdir(saved), 0);
    if (!app) fail_msg("loading the bare name fixture_good.so in its folder: '%s'", good_error.c_str());
    assert_null(libc.get());
    if (error.find("cannot load app 'libc.so.6': No such file or directory") == std::string::npos) {
        fail_msg("a bare name not in the folder: expected 'No such file or directory', got '%s'", error.c_str());
    }
    if (std::getenv("CWSGI_SERVE") != nullptr && serve_rc != 0) {
        fail_msg("cwsgi-serve --check fixture_good.so in its folder: exit %d, output '%s'", serve_rc,
                 serve_out.c_str());
    }
}

// `cwsgi-serve --check`: exit status and output.
int run_check(const char *name, std::string &out)
{
    const char *serve = std::getenv("CWSGI_SERVE");
    if (serve == nullptr) return -1;
    std::string cmd = std::string(serve) + " --check " + fixture(name) + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    if (p == nullptr) return -1;
    char buf[4096];
    size_t n;
    out.clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_loader__serve_check(void **) // rule: ABI-LOAD-3, ABI-LOAD-7
{
    if (std::getenv("CWSGI_SERVE") == nullptr) skip();
    std::string out;
    assert_int_equal(run_check("fixture_good.so", out), 0);
    assert_non_null(std::strstr(out.c_str(), "thread-safety:"));
    assert_non_null(std::strstr(out.c_str(), "abi:            1.0"));
    assert_non_null(std::strstr(out.c_str(), "execution:      threads (the app does not declare"));
    assert_int_equal(run_check("fixture_cooperative.so", out), 0);
    assert_non_null(std::strstr(out.c_str(), "cooperative:    yes"));
    const char *broken[] = {"fixture_no_entry.so",      "fixture_wrong_major.so",   "fixture_newer_minor.so",
                            "fixture_init_fails.so",    "fixture_no_handle.so",     "not_an_elf.so",
                            "fixture_entry_refuses.so", "fixture_nonzero_tail.so",  "fixture_bad_threads.so",
                            "fixture_flags_minor0.so",  "fixture_unknown_flags.so", "missing.so"};
    for (const char *b : broken) {
        int rc = run_check(b, out);
        if (rc != 4) fail_msg("--check %s: exit %d, output '%s'", b, rc, out.c_str());
        // One line, prefixed with the program name.
        assert_int_equal(std::count(out.begin(), out.end(), '\n'), 1);
        assert_true(out.rfind("cwsgi-serve: cannot load app", 0) == 0 || out.rfind("cwsgi-serve: app", 0) == 0);
    }
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loader__good),
        cmocka_unit_test(test_loader__missing_file),
        cmocka_unit_test(test_loader__not_a_shared_object),
        cmocka_unit_test(test_loader__no_entry_symbol),
        cmocka_unit_test(test_loader__wrong_major),
        cmocka_unit_test(test_loader__newer_minor),
        cmocka_unit_test(test_loader__same_or_older_minor_loads),
        cmocka_unit_test(test_loader__bad_thread_safety),
        cmocka_unit_test(test_loader__checks_before_init),
        cmocka_unit_test(test_loader__never_dlclose),
        cmocka_unit_test(test_loader__entry_refuses),
        cmocka_unit_test(test_loader__no_handle),
        cmocka_unit_test(test_loader__missing_capability),
        cmocka_unit_test(test_loader__nonzero_tail),
        cmocka_unit_test(test_loader__init_fails),
        cmocka_unit_test(test_loader__v10_app_loads),
        cmocka_unit_test(test_loader__flags_need_minor_1),
        cmocka_unit_test(test_loader__exec_mode_choice),
        cmocka_unit_test(test_loader__sync_mode_choice),
        cmocka_unit_test(test_loader__server_info_mode),
        cmocka_unit_test(test_loader__bare_name_is_current_directory),
        cmocka_unit_test(test_loader__serve_check),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
