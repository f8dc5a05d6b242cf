/* bad_wait_args.c: asks wait_fd for an event bit that does not exist (THR-6). The server
 * refuses it; the app then answers.
 * rule: THR-6 */
#define BAD_ABI_MINOR 1
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    g_api->wait_fd(req, -1, 0x80, 10); /* only CWSGI_WAIT_READ and CWSGI_WAIT_WRITE exist */
    bad_start(req, NULL, NULL);
    return g_api->write(req, "wait\n", 5);
}
