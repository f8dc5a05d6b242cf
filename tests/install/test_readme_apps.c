/*
 * test_readme_apps.c: drives the two apps of README.md (extracted from it by run.sh and built
 * out of tree against the installed package) through the installed in-process test host.
 * Usage: test_readme_apps C_APP.so CXX_APP.so
 */
#include <cwsgi/testhost.h>

#include <stdio.h>
#include <string.h>

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        ++failures;
    }
}

static cwsgi_test_response *request(cwsgi_testhost *h, const char *method, const char *target, const char *body)
{
    cwsgi_test_request q;
    cwsgi_test_response *r = NULL;
    memset(&q, 0, sizeof q);
    q.struct_size = sizeof q;
    q.method = method;
    q.target = target;
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    if (cwsgi_testhost_request(h, &q, &r) != CWSGI_OK) return NULL;
    return r;
}

int main(int argc, char **argv)
{
    char err[512];
    cwsgi_testhost *h;
    cwsgi_test_response *r;
    if (argc != 3) {
        fprintf(stderr, "usage: %s C_APP.so CXX_APP.so\n", argv[0]);
        return 2;
    }
    h = cwsgi_testhost_open(argv[1], NULL, err, sizeof err);
    if (h == NULL) {
        fprintf(stderr, "FAIL: open %s: %s\n", argv[1], err);
        return 1;
    }
    r = cwsgi_testhost_get(h, "/");
    expect(r && r->status == 200 && r->body_len == 3 && memcmp(r->body, "hi\n", 3) == 0, "C app says hi");
    expect(r && strcmp(cwsgi_test_response_header(r, "content-length"), "3") == 0, "C app sends Content-Length");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(h);

    h = cwsgi_testhost_open(argv[2], NULL, err, sizeof err);
    if (h == NULL) {
        fprintf(stderr, "FAIL: open %s: %s\n", argv[2], err);
        return 1;
    }
    r = request(h, "GET", "/hello/world", NULL);
    expect(r && r->status == 200 && strcmp(r->body, "Hello, world!\n") == 0, "C++ app greets with a path parameter");
    cwsgi_test_response_free(r);
    r = request(h, "POST", "/sum", "12345");
    expect(r && r->status == 200 && strcmp(r->body, "{\"bytes\":5}") == 0, "C++ app reads the body");
    cwsgi_test_response_free(r);
    r = request(h, "GET", "/nope", NULL);
    expect(r && r->status == 404, "unknown path is 404");
    cwsgi_test_response_free(r);
    r = request(h, "DELETE", "/sum", NULL);
    expect(r && r->status == 405 && cwsgi_test_response_header(r, "allow") != NULL, "wrong method is 405 with Allow");
    cwsgi_test_response_free(r);
    cwsgi_testhost_close(h);
    printf("%s\n", failures ? "readme apps: FAILED" : "readme apps: ok");
    return failures ? 1 : 0;
}
