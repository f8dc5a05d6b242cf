/* bad_crlf.c: puts CR LF in a header value, a response-splitting attempt (RESP-HDR-2). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    if (bad_start(req, "X-Split", "a\r\nSet-Cookie: evil=1") != CWSGI_OK) bad_start(req, NULL, NULL);
    return g_api->write(req, "crlf\n", 5);
}
