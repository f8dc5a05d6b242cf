/*
 * test_apps.c: tests of the sample apps in apps/. Each app is loaded as a server would load
 * it, from $CWSGI_BUILD_DIR/apps/<name>.so, into the in-process test host, and driven with
 * requests built in code: hello's body and headers, echo's round trip (Content-Length and
 * chunked bodies), stream's chunk counts and early stop, upload's SHA-256 of a multi-MiB body,
 * env's JSON, and predict's health, predictions and error statuses.
 */
#define _POSIX_C_SOURCE 200809L
#include <cwsgi/testhost.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- helpers -------------------------------------------------------------------------- */

/* Writes the path of app `name` into buf; skips the test when CWSGI_BUILD_DIR is unset. */
static void app_path(const char *name, char *buf, size_t cap)
{
    const char *dir = getenv("CWSGI_BUILD_DIR");
    if (dir == NULL) {
        print_message("CWSGI_BUILD_DIR is not set: run through ctest\n");
        skip();
    }
    snprintf(buf, cap, "%s/apps/%s.so", dir, name);
}

/* Opens app `name` with default options; fails the test with the host's reason. */
static cwsgi_testhost *open_app(const char *name)
{
    char path[4096];
    app_path(name, path, sizeof path);
    if (access(path, R_OK) != 0) {
        print_message("%s is not built: skipped\n", path);
        skip();
    }
    char err[512] = "";
    cwsgi_testhost_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.log_level = CWSGI_LOG_ERROR;
    cwsgi_testhost *host = cwsgi_testhost_open(path, &opts, err, sizeof err);
    if (host == NULL) {
        fail_msg("cannot open %s: %s", path, err);
    }
    return host;
}

/* A request with the given parts; body may be NULL. */
static cwsgi_test_request make_request(const char *method, const char *target, const void *body, size_t body_len)
{
    cwsgi_test_request req;
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.body_len = body_len;
    req.disconnect_after = -1;
    return req;
}

/* Runs req; fails the test when the host refuses it. */
static cwsgi_test_response *run(cwsgi_testhost *host, const cwsgi_test_request *req)
{
    cwsgi_test_response *resp = NULL;
    assert_int_equal(cwsgi_testhost_request(host, req, &resp), CWSGI_OK);
    assert_non_null(resp);
    return resp;
}

static cwsgi_test_response *post(cwsgi_testhost *host, const char *target, const char *body)
{
    cwsgi_test_request req = make_request("POST", target, body, strlen(body));
    return run(host, &req);
}

static const char *header_or_empty(const cwsgi_test_response *r, const char *name)
{
    const char *v = cwsgi_test_response_header(r, name);
    return v != NULL ? v : "";
}

/* Fails unless `needle` occurs in the response body. */
static void assert_body_has(const cwsgi_test_response *r, const char *needle)
{
    if (strstr(r->body, needle) == NULL) {
        fail_msg("body lacks '%s': %.*s", needle, (int)(r->body_len > 2000 ? 2000 : r->body_len), r->body);
    }
}

/* A deterministic body of n bytes that is not periodic in small powers of two. */
static unsigned char *pattern_body(size_t n)
{
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; ++i) {
        b[i] = (unsigned char)((((i * 31 + 7) >> 3) ^ i) & 0xff);
    }
    return b;
}

/* ---- hello -------------------------------------------------------------------------- */

static void test_apps__hello_says_hello_with_length(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("hello");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/anything?at=all");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "Hello, World!\n");
    assert_int_equal(r->body_len, 14);
    assert_string_equal(header_or_empty(r, "Content-Length"), "14");
    assert_string_equal(header_or_empty(r, "Content-Type"), "text/plain; charset=utf-8");
    assert_int_equal(r->framing, 1);
    assert_int_equal(r->outcome, CWSGI_OK);
    cwsgi_test_response_free(r);
    if (strstr(cwsgi_testhost_describe(host), "hello") == NULL) {
        fail_msg("describe lacks the app name: %s", cwsgi_testhost_describe(host));
    }
    cwsgi_testhost_close(host);
}

/* ---- echo --------------------------------------------------------------------------- */

static void test_apps__echo_round_trips_a_sized_body(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("echo");
    size_t n = 3 * 1024 * 1024 + 17; /* several 64 KiB pieces and a partial one */
    unsigned char *body = pattern_body(n);
    const cwsgi_header hs[] = {{"Content-Type", 12, "application/x-test", 18}};
    cwsgi_test_request req = make_request("PUT", "/echo", body, n);
    req.headers = hs;
    req.n_headers = 1;
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, n);
    assert_memory_equal(r->body, body, n);
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/x-test");
    char len[32];
    snprintf(len, sizeof len, "%zu", n);
    assert_string_equal(header_or_empty(r, "Content-Length"), len);
    assert_int_equal(r->framing, 1);
    cwsgi_test_response_free(r);
    free(body);
    cwsgi_testhost_close(host);
}

static void test_apps__echo_round_trips_a_chunked_body(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("echo");
    size_t n = 200 * 1000 + 3;
    unsigned char *body = pattern_body(n);
    cwsgi_test_request req = make_request("POST", "/", body, n);
    req.chunked = 1;
    req.read_piece = 1000; /* the app sees many short reads: rule INPUT-READ-1 */
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, n);
    assert_memory_equal(r->body, body, n);
    assert_null(cwsgi_test_response_header(r, "Content-Length"));
    assert_null(cwsgi_test_response_header(r, "Content-Type")); /* none was sent */
    assert_int_equal(r->framing, 2);
    cwsgi_test_response_free(r);
    free(body);
    cwsgi_testhost_close(host);
}

static void test_apps__echo_of_nothing_is_empty(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("echo");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

/* ---- stream ------------------------------------------------------------------------- */

static void test_apps__stream_sends_n_chunks_of_m_bytes(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("stream");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/?n=5&m=100");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 500);
    for (size_t i = 0; i < 500; ++i) {
        if (r->body[i] != (char)('a' + i / 100)) {
            fail_msg("byte %zu is '%c'", i, r->body[i]);
        }
    }
    assert_null(cwsgi_test_response_header(r, "Content-Length"));
    assert_int_equal(r->framing, 2); /* chunked on HTTP/1.1 */
    cwsgi_test_response_free(r);

    r = cwsgi_testhost_get(host, "/"); /* defaults: 10 x 1024 */
    assert_non_null(r);
    assert_int_equal(r->body_len, 10 * 1024);
    assert_int_equal(r->body[10 * 1024 - 1], 'j');
    cwsgi_test_response_free(r);

    r = cwsgi_testhost_get(host, "/?n=0");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__stream_refuses_a_bad_query(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("stream");
    const char *bad[] = {"/?n=x", "/?n=", "/?m=-1", "/?n=100001", "/?m=1048577", "/?delay_ms=10001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        cwsgi_test_response *r = cwsgi_testhost_get(host, bad[i]);
        assert_non_null(r);
        if (r->status != 400) {
            fail_msg("%s answered %u, not 400", bad[i], r->status);
        }
        cwsgi_test_response_free(r);
    }
    cwsgi_testhost_close(host);
}

static void test_apps__stream_stops_when_the_client_leaves(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("stream");
    cwsgi_test_request req = make_request("GET", "/?n=1000&m=1000", NULL, 0);
    req.disconnect_after = 5000;
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 200);
    assert_true(r->body_len < 1000 * 1000);
    assert_int_equal(r->outcome, CWSGI_E_DISCONNECTED); /* rule: LIFE-END-2 */
    assert_true(r->handle_result < 0);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__stream_delay_paces_chunks(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("stream");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/?n=3&m=2&delay_ms=5");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "aabbcc");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

/* ---- upload ------------------------------------------------------------------------- */

static void test_apps__upload_hashes_a_multi_mib_body(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("upload");
    size_t n = 5 * 1024 * 1024 + 123;
    unsigned char *body = pattern_body(n);
    cwsgi_test_request req = make_request("POST", "/upload", body, n);
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 200);
    /* sha256 of pattern_body(5 MiB + 123), computed independently with Python's hashlib. */
    assert_string_equal(r->body, "{\"bytes\":5243003,\"sha256\":"
                                 "\"30f5cba9fa4b6bae2b59e5d0fe31b6e589e454261764411eb3bdb1a573067887\"}\n");
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
    cwsgi_test_response_free(r);

    req.chunked = 1; /* the same body, length unknown in advance */
    req.read_piece = 70000;
    r = run(host, &req);
    assert_int_equal(r->status, 200);
    assert_body_has(r, "30f5cba9fa4b6bae2b59e5d0fe31b6e589e454261764411eb3bdb1a573067887");
    cwsgi_test_response_free(r);
    free(body);
    cwsgi_testhost_close(host);
}

static void test_apps__upload_of_nothing_is_the_empty_hash(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("upload");
    cwsgi_test_response *r = post(host, "/", "");
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"bytes\":0,\"sha256\":"
                                 "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}\n");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__upload_over_the_body_limit_is_413(void **state)
{
    (void)state;
    char path[4096];
    app_path("upload", path, sizeof path);
    if (access(path, R_OK) != 0) {
        skip();
    }
    cwsgi_testhost_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.log_level = CWSGI_LOG_CRITICAL;
    opts.limit_request_body = 1000;
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open(path, &opts, err, sizeof err);
    if (host == NULL) {
        fail_msg("cannot open %s: %s", path, err);
    }
    unsigned char *body = pattern_body(5000);
    cwsgi_test_request req = make_request("POST", "/", body, 5000);
    req.chunked = 1; /* found while reading: read() fails, the app returns its code */
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 413); /* rule: INPUT-LIMIT-2 */
    assert_int_equal(r->handle_result, CWSGI_E_BODY);
    cwsgi_test_response_free(r);
    free(body);
    cwsgi_testhost_close(host);
}

/* ---- env ---------------------------------------------------------------------------- */

static void test_apps__env_shows_environ_and_headers_as_json(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("env");
    const cwsgi_header hs[] = {
        {"X-Quote", 7, "say \"hi\"\\", 9},
        {"X-Latin1", 8, "caf\xe9", 4},
        {"X-Dup", 5, "1", 1},
        {"X-Dup", 5, "2", 1},
    };
    cwsgi_test_request req = make_request("GET", "/some/path?x=1&y=%20", NULL, 0);
    req.headers = hs;
    req.n_headers = 4;
    cwsgi_test_response *r = run(host, &req);
    assert_int_equal(r->status, 200);
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
    assert_true(strncmp(r->body, "{\"environ\":{", 12) == 0);
    assert_body_has(r, "\"REQUEST_METHOD\":\"GET\"");
    assert_body_has(r, "\"PATH_INFO\":\"/some/path\"");
    assert_body_has(r, "\"QUERY_STRING\":\"x=1&y=%20\"");
    assert_body_has(r, "\"SERVER_PROTOCOL\":\"HTTP/1.1\"");
    assert_body_has(r, "\"HTTP_X_QUOTE\":\"say \\\"hi\\\"\\\\\"");
    assert_body_has(r, "\"HTTP_X_LATIN1\":\"caf\\u00e9\"");
    assert_body_has(r, "\"HTTP_X_DUP\":\"1, 2\"");
    assert_body_has(r, "\"headers\":[");
    assert_body_has(r, "[\"x-dup\",\"1\"],[\"x-dup\",\"2\"]"); /* rule: ENV-HDR-1 */
    assert_true(r->body_len > 3 && strcmp(r->body + r->body_len - 3, "]}\n") == 0);
    char len[32];
    snprintf(len, sizeof len, "%zu", r->body_len);
    assert_string_equal(header_or_empty(r, "Content-Length"), len);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

/* ---- predict ------------------------------------------------------------------------ */

/* Reads the first number after "predictions":[ at or after `from` in the body. */
static double prediction_at(const cwsgi_test_response *r, size_t index)
{
    const char *p = strstr(r->body, "\"predictions\":[");
    if (p == NULL) {
        fail_msg("no predictions in %s", r->body);
    }
    p += strlen("\"predictions\":[");
    for (size_t i = 0; i < index; ++i) {
        p = strchr(p, ',');
        assert_non_null(p);
        ++p;
    }
    return strtod(p, NULL);
}

static void assert_near(double got, double want)
{
    double d = got - want;
    if (d < -1e-9 || d > 1e-9) {
        fail_msg("got %.17g, want %.17g", got, want);
    }
}

static void test_apps__predict_health_names_the_model(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("predict");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/health");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
    assert_body_has(r, "\"status\":\"ok\"");
    assert_body_has(r, "\"model\":\"iris-virginica-logistic\"");
    assert_body_has(r, "\"features\":4");
    cwsgi_test_response_free(r);
    r = cwsgi_testhost_get(host, "/v1/model");
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_body_has(r, "\"sepal_length\"");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__predict_answers_rows_and_batches(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("predict");
    /* Expected: 1 / (1 + exp(-(w.x + b))) with model.json's numbers (Python's math.exp). */
    cwsgi_test_response *r = post(host, "/v1/predict", "{\"features\":[6.3,3.3,6.0,2.5]}");
    assert_int_equal(r->status, 200);
    assert_near(prediction_at(r, 0), 0.9988187498455208);
    cwsgi_test_response_free(r);

    r = post(host, "/v1/predict",
             "{\"instances\":[[5.1,3.5,1.4,0.2],{\"sepal_length\":5.9,\"sepal_width\":3.0,"
             "\"petal_length\":5.1,\"petal_width\":1.8}]}");
    assert_int_equal(r->status, 200);
    assert_near(prediction_at(r, 0), 0.0001032762334325315);
    assert_near(prediction_at(r, 1), 0.9611342239492229);
    cwsgi_test_response_free(r);

    r = post(host, "/v1/predict", "{\"instances\":[]}");
    assert_int_equal(r->status, 200);
    assert_body_has(r, "\"predictions\":[]");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__predict_bad_input_is_400(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("predict");
    const char *bad[] = {"not json",         "[1,2,3,4]",          "{}", "{\"features\":[1,2,\"x\",4]}",
                         "{\"features\":7}", "{\"instances\":{}}", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        cwsgi_test_response *r = post(host, "/v1/predict", bad[i]);
        if (r->status != 400) {
            fail_msg("'%s' answered %u, not 400", bad[i], r->status);
        }
        assert_string_equal(header_or_empty(r, "Content-Type"), "application/json");
        assert_body_has(r, "\"error\":");
        cwsgi_test_response_free(r);
    }
    cwsgi_testhost_close(host);
}

static void test_apps__predict_wrong_feature_count_is_422(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("predict");
    const char *bad[] = {"{\"features\":[1,2,3]}", "{\"instances\":[[1,2,3,4],[1,2,3,4,5]]}",
                         "{\"features\":{\"sepal_length\":1}}",
                         "{\"features\":{\"sepal_length\":1,\"sepal_width\":1,\"petal_length\":1,"
                         "\"petal_width\":1,\"extra\":1}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        cwsgi_test_response *r = post(host, "/v1/predict", bad[i]);
        if (r->status != 422) {
            fail_msg("'%s' answered %u, not 422", bad[i], r->status);
        }
        assert_body_has(r, "\"error\":");
        cwsgi_test_response_free(r);
    }
    cwsgi_testhost_close(host);
}

static void test_apps__predict_routes_answer_404_and_405(void **state)
{
    (void)state;
    cwsgi_testhost *host = open_app("predict");
    cwsgi_test_response *r = cwsgi_testhost_get(host, "/v1/predict");
    assert_non_null(r);
    assert_int_equal(r->status, 405);
    assert_string_equal(header_or_empty(r, "Allow"), "POST");
    cwsgi_test_response_free(r);
    r = post(host, "/predict", "{}"); /* only under /v1 */
    assert_int_equal(r->status, 404);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__predict_loads_the_model_from_the_env_var(void **state)
{
    (void)state;
    char model[] = "/tmp/cwsgi-test-model-XXXXXX";
    int fd = mkstemp(model);
    assert_true(fd >= 0);
    const char text[] = "{\"name\":\"lin\",\"kind\":\"linear\",\"features\":[\"a\",\"b\"],"
                        "\"weights\":[2,3],\"bias\":1}";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    setenv("CWSGI_PREDICT_MODEL", model, 1);
    cwsgi_testhost *host = open_app("predict");
    unsetenv("CWSGI_PREDICT_MODEL");
    unlink(model);
    cwsgi_test_response *r = post(host, "/v1/predict", "{\"features\":{\"b\":1,\"a\":0.5}}");
    assert_int_equal(r->status, 200);
    assert_near(prediction_at(r, 0), 5.0);
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(host);
}

static void test_apps__predict_without_a_model_fails_to_start(void **state)
{
    (void)state;
    char path[4096];
    app_path("predict", path, sizeof path);
    setenv("CWSGI_PREDICT_MODEL", "/nonexistent/model.json", 1);
    char err[512] = "";
    cwsgi_testhost *host = cwsgi_testhost_open(path, NULL, err, sizeof err);
    unsetenv("CWSGI_PREDICT_MODEL");
    assert_null(host); /* rule: LIFE-WORKER-2 */
    if (strstr(err, "/nonexistent/model.json") == NULL) {
        fail_msg("the error does not name the file: '%s'", err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apps__hello_says_hello_with_length),
        cmocka_unit_test(test_apps__echo_round_trips_a_sized_body),
        cmocka_unit_test(test_apps__echo_round_trips_a_chunked_body),
        cmocka_unit_test(test_apps__echo_of_nothing_is_empty),
        cmocka_unit_test(test_apps__stream_sends_n_chunks_of_m_bytes),
        cmocka_unit_test(test_apps__stream_refuses_a_bad_query),
        cmocka_unit_test(test_apps__stream_stops_when_the_client_leaves),
        cmocka_unit_test(test_apps__stream_delay_paces_chunks),
        cmocka_unit_test(test_apps__upload_hashes_a_multi_mib_body),
        cmocka_unit_test(test_apps__upload_of_nothing_is_the_empty_hash),
        cmocka_unit_test(test_apps__upload_over_the_body_limit_is_413),
        cmocka_unit_test(test_apps__env_shows_environ_and_headers_as_json),
        cmocka_unit_test(test_apps__predict_health_names_the_model),
        cmocka_unit_test(test_apps__predict_answers_rows_and_batches),
        cmocka_unit_test(test_apps__predict_bad_input_is_400),
        cmocka_unit_test(test_apps__predict_wrong_feature_count_is_422),
        cmocka_unit_test(test_apps__predict_routes_answer_404_and_405),
        cmocka_unit_test(test_apps__predict_loads_the_model_from_the_env_var),
        cmocka_unit_test(test_apps__predict_without_a_model_fails_to_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
