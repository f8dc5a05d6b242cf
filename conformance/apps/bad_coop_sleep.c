/* bad_coop_sleep.c: declares the cooperative promise and sleeps 50 ms outside any CWSGI call
 * (THR-5): on fibers the whole event loop stalls meanwhile. Lint sees it in gevent mode only
 * (COMP-LINT-7); in gthread mode a sleep blocks just its own thread and is no finding.
 * rule: COMP-LINT-7 */
#define _DEFAULT_SOURCE
#include <unistd.h>

#define BAD_FLAGS CWSGI_APP_COOPERATIVE
#define BAD_ABI_MINOR 1
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    usleep(50000); /* blocking sleep: should be wait_fd(req, -1, 0, 50) */
    bad_start(req, NULL, NULL);
    return g_api->write(req, "slept\n", 6);
}
