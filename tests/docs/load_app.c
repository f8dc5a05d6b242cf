/*
 * load_app.c: the docs test's generic check of an app built from a code block (check_docs.py).
 * Loads APP.so through the in-process test host (handshake, init, worker_start), sends it
 * `GET /` and `GET /health`, and fails when the app does not load, when a request gets no
 * response, or when the app's handle() failed (a crash fails the process by itself). Any status
 * is fine: a docs app need not answer / with 200.
 * Usage: load_app APP.so
 */
#include <cwsgi/testhost.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    char err[512];
    const char *targets[] = {"/", "/health"};
    cwsgi_testhost *host;
    int failures = 0;
    size_t i;
    if (argc != 2) {
        fprintf(stderr, "usage: %s APP.so\n", argv[0]);
        return 2;
    }
    host = cwsgi_testhost_open(argv[1], NULL, err, sizeof err);
    if (host == NULL) {
        fprintf(stderr, "cannot load %s through the test host: %s\n", argv[1], err);
        return 1;
    }
    for (i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        cwsgi_test_response *r = cwsgi_testhost_get(host, targets[i]);
        if (r == NULL || r->status < 100 || r->status > 599) {
            fprintf(stderr, "%s: GET %s got no response\n", argv[1], targets[i]);
            failures++;
        } else if (r->handle_result < 0 || r->aborted) {
            fprintf(stderr, "%s: GET %s: handle() failed with %d%s\n", argv[1], targets[i], (int)r->handle_result,
                    r->aborted ? " after commit" : "");
            failures++;
        }
        cwsgi_test_response_free(r);
    }
    cwsgi_testhost_close(host);
    return failures == 0 ? 0 : 1;
}
