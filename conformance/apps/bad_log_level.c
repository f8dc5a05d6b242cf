/* bad_log_level.c: logs at level 99, which is no CWSGI_LOG_* level (LOG-ERR-1).
 * rule: LOG-ERR-1 */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    g_api->log(req, 99, "loud", 4); /* 10 to 50 only */
    bad_start(req, NULL, NULL);
    return g_api->write(req, "log\n", 4);
}
