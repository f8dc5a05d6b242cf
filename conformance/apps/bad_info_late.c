/* bad_info_late.c: sends a 103 Early Hints after start_response (RESP-INFO-1). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    bad_start(req, NULL, NULL);
    cwsgi_header link = {"Link", 4, "</a.css>; rel=preload", 21};
    g_api->send_informational(req, 103, &link, 1); /* too late: the final response is set */
    return g_api->write(req, "late\n", 5);
}
