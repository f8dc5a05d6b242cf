/* bad_nobody.c: writes a body in a 204 response (RESP-NOBODY-1). */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    g_api->start_response(req, 204, NULL, NULL, 0, 0);
    g_api->write(req, "body\n", 5); /* the server refuses it (CWSGI_E_LENGTH) and sends nothing */
    return CWSGI_OK;
}
