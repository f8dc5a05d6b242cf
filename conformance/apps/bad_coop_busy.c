/* bad_coop_busy.c: declares the cooperative promise and computes for 600 ms of CPU without a
 * CWSGI call: no other fiber of the loop runs meanwhile. Lint sees it in gevent mode only
 * (COMP-LINT-8, threshold 500 ms); in gthread mode it is ordinary CPU-bound work.
 * rule: COMP-LINT-8 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#define BAD_FLAGS CWSGI_APP_COOPERATIVE
#define BAD_ABI_MINOR 1
#include "bad_common.h"

static long long cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int32_t bad_handle(cwsgi_request *req)
{
    volatile unsigned sink = 0;
    long long start = cpu_ns();
    while (cpu_ns() - start < 600000000LL) /* CPU time, so a loaded machine only makes it longer */
        for (unsigned i = 0; i < 100000; ++i) sink += i;
    bad_start(req, NULL, NULL);
    return g_api->write(req, "busy\n", 5);
}
