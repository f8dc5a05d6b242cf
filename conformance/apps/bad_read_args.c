/* bad_read_args.c: reads into a buffer of zero bytes (INPUT-READ-1), then reads properly.
 * rule: INPUT-READ-1 */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    char buf[256];
    g_api->read(req, buf, 0); /* cap 0: CWSGI_E_INVAL */
    while (g_api->read(req, buf, sizeof buf) > 0) {
    }
    bad_start(req, NULL, NULL);
    return g_api->write(req, "read\n", 5);
}
