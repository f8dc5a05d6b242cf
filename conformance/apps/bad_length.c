/* bad_length.c: declares Content-Length 10 and writes 4 bytes (RESP-LEN-3). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    bad_start(req, "Content-Length", "10");
    g_api->write(req, "four", 4);
    return CWSGI_OK; /* the implied finish comes 6 bytes short */
}
