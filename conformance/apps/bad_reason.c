/* bad_reason.c: a reason phrase with CR LF in it, a response-splitting attempt (RESP-START-3).
 * The server refuses it; the app then starts the response properly.
 * rule: RESP-START-3 */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    cwsgi_header ct = {"Content-Type", 12, "text/plain", 10};
    g_api->start_response(req, 200, "OK\r\nX-Injected: 1", &ct, 1, 0);
    bad_start(req, NULL, NULL);
    return g_api->write(req, "reason\n", 7);
}
