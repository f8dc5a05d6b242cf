/* bad_read_past.c: keeps reading after read returned 0, the end of the body (COMP-LINT-5). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    char buf[256];
    int64_t total = 0, n;
    while ((n = g_api->read(req, buf, sizeof buf)) > 0) total += n;
    g_api->read(req, buf, sizeof buf); /* past the end: a second and a third read after 0 */
    g_api->read(req, buf, sizeof buf);
    bad_start(req, NULL, NULL);
    return g_api->write(req, "read\n", 5);
}
