/* bad_hop.c: sets a hop-by-hop header, which the server owns (RESP-HDR-3). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    if (bad_start(req, "Connection", "close") != CWSGI_OK) bad_start(req, NULL, NULL);
    return g_api->write(req, "hop\n", 4);
}
