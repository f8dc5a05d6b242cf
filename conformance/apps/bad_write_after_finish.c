/* bad_write_after_finish.c: writes after finish (RESP-STATE-3). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    bad_start(req, NULL, NULL);
    g_api->write(req, "done\n", 5);
    g_api->finish(req);
    g_api->write(req, "more\n", 5);
    return CWSGI_OK;
}
