// test_settings_abi.cc: how ABI 1.2's settings cross the boundary, append-only. The core's own
// table against apps that declare 1.1 and 1.2; a table cut to the 1.1 size (what a 1.1 server
// hands out) against the same apps and against cwsgi.hpp's accessors; and parse_setting, the
// C++ layer's typed reading of a setting's text (LIFE-SET-1, ABI-VER-2/3, ABI-STRUCT-3).
#include "cmocka.hh"

#include <cstddef>
#include <cstring>
#include <limits>
#include <string>

#include <cwsgi.hpp>

#include "core/app.hh"
#include "core/context.hh"

using namespace cwsgi::core;

namespace {

int32_t ok_handle(void *, cwsgi_request *) { return CWSGI_OK; }

// A descriptor that declares `minor`; entry_1_1 and entry_1_2 hand out one each.
cwsgi_app_desc make_desc(uint16_t minor)
{
    cwsgi_app_desc d{};
    d.struct_size = sizeof d;
    d.abi_major = CWSGI_ABI_MAJOR;
    d.abi_minor = minor;
    d.name = "settings-abi";
    d.thread_safety = CWSGI_THREADS_SAFE;
    d.handle = ok_handle;
    return d;
}
const cwsgi_app_desc kDesc11 = make_desc(1);
const cwsgi_app_desc kDesc12 = make_desc(2);
int32_t entry_1_1(const cwsgi_server_api *, const cwsgi_app_desc **out)
{
    *out = &kDesc11;
    return CWSGI_OK;
}
int32_t entry_1_2(const cwsgi_server_api *, const cwsgi_app_desc **out)
{
    *out = &kDesc12;
    return CWSGI_OK;
}

// A Context whose configuration has two settings, current for the test's duration.
struct Fixture {
    Context ctx;
    explicit Fixture(Config cfg) : ctx(std::move(cfg), "test", 0) { Context::set_current(&ctx); }
    ~Fixture() { Context::set_current(nullptr); }
};

Config two_settings()
{
    Config cfg;
    cfg.app_settings = {{"model.path", "/srv/m.bin"}, {"threads", "4"}};
    return cfg;
}

// The table as a 1.1 server hands it out: it ends after wait_fd, and says 1.1.
cwsgi_server_api table_1_1(const cwsgi_server_api &full)
{
    cwsgi_server_api t = full;
    t.abi_minor = 1;
    t.struct_size = offsetof(cwsgi_server_api, setting_get);
    t.setting_get = nullptr; // past struct_size: an old server has nothing there
    t.setting_at = nullptr;
    return t;
}

void test_settings_abi__table_says_1_2(void **) // rule: ABI-VER-4, ABI-STRUCT-3
{
    Fixture f(two_settings());
    const cwsgi_server_api *api = f.ctx.api();
    assert_int_equal(api->abi_minor, 2);
    assert_int_equal(CWSGI_ABI_MINOR, 2);
    assert_true(CWSGI_API_HAS(api, setting_get));
    assert_true(CWSGI_API_HAS(api, setting_at));
    // The 1.2 members come after every 1.1 member (append-only).
    assert_true(offsetof(cwsgi_server_api, setting_get) >= offsetof(cwsgi_server_api, wait_fd) + sizeof api->wait_fd);
    cwsgi_server_api old = table_1_1(*api);
    assert_false(CWSGI_API_HAS(&old, setting_get));
    assert_true(CWSGI_API_HAS(&old, wait_fd));
}

void test_settings_abi__core_lookup(void **) // rule: LIFE-SET-1
{
    Fixture f(two_settings());
    const cwsgi_server_api *api = f.ctx.api();
    cwsgi_str v{"unchanged", 9};
    assert_int_equal(api->setting_get("model.path", &v), CWSGI_OK);
    assert_int_equal(v.len, 10);
    assert_memory_equal(v.ptr, "/srv/m.bin", 11); // with its NUL (ABI-TYPE-2)
    cwsgi_str before = v;
    assert_int_equal(api->setting_get("MODEL.PATH", &v), CWSGI_E_NOTFOUND); // case-sensitive
    assert_int_equal(api->setting_get("path", &v), CWSGI_E_NOTFOUND);       // whole key
    assert_int_equal(api->setting_get("model", &v), CWSGI_E_NOTFOUND);
    assert_ptr_equal(v.ptr, before.ptr); // unchanged on error
    assert_int_equal(api->setting_get(nullptr, &v), CWSGI_E_INVAL);
    assert_int_equal(api->setting_get("threads", nullptr), CWSGI_E_INVAL);

    cwsgi_str k{}, val{};
    assert_int_equal(api->setting_at(0, &k, &val), CWSGI_OK);
    assert_string_equal(k.ptr, "model.path");
    assert_int_equal(api->setting_at(1, &k, &val), CWSGI_OK);
    assert_string_equal(k.ptr, "threads");
    assert_string_equal(val.ptr, "4");
    assert_int_equal(api->setting_at(2, &k, &val), CWSGI_E_NOTFOUND);
    assert_int_equal(api->setting_at(0, nullptr, &val), CWSGI_E_INVAL);
    assert_int_equal(api->setting_at(0, &k, nullptr), CWSGI_E_INVAL);
    // The same pointer on every call: borrowed for the process's life, never rebuilt.
    cwsgi_str again{};
    api->setting_get("threads", &again);
    assert_ptr_equal(again.ptr, val.ptr);
}

void test_settings_abi__none_configured(void **) // rule: LIFE-SET-1
{
    Fixture f{Config{}};
    cwsgi_str k{}, v{};
    assert_int_equal(f.ctx.api()->setting_get("model.path", &v), CWSGI_E_NOTFOUND);
    assert_int_equal(f.ctx.api()->setting_at(0, &k, &v), CWSGI_E_NOTFOUND);
    assert_true(cwsgi::settings(f.ctx.api()).empty());
}

void test_settings_abi__1_2_app_refused_by_1_1_server(void **) // rule: ABI-VER-2, ABI-VER-5
{
    Fixture f(two_settings());
    cwsgi_server_api old = table_1_1(*f.ctx.api());
    std::string error;
    auto app = App::from_entry(entry_1_2, &old, error, "needs12.so");
    assert_null(app.get());
    const char *want = "cannot load app 'needs12.so': it needs CWSGI ABI 1.2; this server implements 1.1: upgrade "
                       "the server (ABI-VER-2)";
    if (error != want) fail_msg("got: %s", error.c_str());
}

void test_settings_abi__1_1_app_loads_on_both(void **) // rule: ABI-VER-3
{
    Fixture f(two_settings());
    cwsgi_server_api old = table_1_1(*f.ctx.api());
    std::string error;
    auto on_old = App::from_entry(entry_1_1, &old, error, "app11.so");
    assert_non_null(on_old.get());
    auto on_new = App::from_entry(entry_1_1, f.ctx.api(), error, "app11.so");
    assert_non_null(on_new.get());
    auto twelve = App::from_entry(entry_1_2, f.ctx.api(), error, "app12.so");
    assert_non_null(twelve.get());
    assert_int_equal(on_new->init(error), CWSGI_OK);
    on_new->destroy();
}

void test_settings_abi__hpp_on_old_and_new_tables(void **) // rule: ABI-STRUCT-3, LIFE-SET-1
{
    Fixture f(two_settings());
    const cwsgi_server_api *api = f.ctx.api();
    auto v = cwsgi::setting(api, "model.path");
    assert_true(v.has_value());
    assert_true(*v == "/srv/m.bin");
    assert_false(cwsgi::setting(api, "nope").has_value());
    auto all = cwsgi::settings(api);
    assert_int_equal(all.size(), 2);
    assert_true(all[1].first == "threads" && all[1].second == "4");
    // On a 1.1 table the accessors read past nothing: "not set", and the app falls back.
    cwsgi_server_api old = table_1_1(*api);
    assert_false(cwsgi::setting(&old, "model.path").has_value());
    assert_true(cwsgi::settings(&old).empty());
    assert_false(cwsgi::setting(nullptr, "model.path").has_value());
}

template <class T> bool refused(const char *text)
{
    try {
        (void)cwsgi::parse_setting<T>("k", text);
    } catch (const std::invalid_argument &e) {
        return std::string(e.what()).find("setting 'k' = '") == 0;
    }
    return false;
}

void test_settings_abi__parse_setting(void **)
{
    using cwsgi::parse_setting;
    assert_int_equal(parse_setting<int>("k", "42"), 42);
    assert_int_equal(parse_setting<int>("k", "-7"), -7);
    assert_true(parse_setting<uint64_t>("k", "18446744073709551615") == std::numeric_limits<uint64_t>::max());
    assert_true(refused<int>("4x"));
    assert_true(refused<int>(""));
    assert_true(refused<int>("1.5"));
    assert_true(refused<uint8_t>("256")); // out of range
    assert_true(refused<unsigned>("-1"));
    assert_true(parse_setting<double>("k", "1.5") == 1.5);
    assert_true(parse_setting<double>("k", "+2e3") == 2000.0);
    assert_true(parse_setting<double>("k", "-0.25") == -0.25);
    assert_true(parse_setting<double>("k", "inf") == std::numeric_limits<double>::infinity());
    assert_true(refused<double>("1.5.2"));
    assert_true(refused<double>("fast"));
    assert_true(parse_setting<bool>("k", "true"));
    assert_false(parse_setting<bool>("k", "false"));
    assert_true(parse_setting<bool>("k", "1"));
    assert_false(parse_setting<bool>("k", "off"));
    assert_true(refused<bool>("True")); // TOML spells it lowercase; so does every server
    assert_true(parse_setting<std::string>("k", "a b") == "a b");
    try {
        (void)parse_setting<int>("model.threads", "many");
        fail_msg("no throw");
    } catch (const std::invalid_argument &e) {
        assert_string_equal(e.what(), "setting 'model.threads' = 'many' is not an integer in range");
    }
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_abi__table_says_1_2),
        cmocka_unit_test(test_settings_abi__core_lookup),
        cmocka_unit_test(test_settings_abi__none_configured),
        cmocka_unit_test(test_settings_abi__1_2_app_refused_by_1_1_server),
        cmocka_unit_test(test_settings_abi__1_1_app_loads_on_both),
        cmocka_unit_test(test_settings_abi__hpp_on_old_and_new_tables),
        cmocka_unit_test(test_settings_abi__parse_setting),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
