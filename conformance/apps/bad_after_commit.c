/* bad_after_commit.c: changes the headers after the first body byte (RESP-STATE-2). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    bad_start(req, NULL, NULL);
    g_api->write(req, "x", 1);
    bad_start(req, "X-Late", "1"); /* the response is committed: too late */
    return CWSGI_OK;
}
