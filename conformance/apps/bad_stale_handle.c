/* bad_stale_handle.c: keeps the request handle past its on_request_end and writes with it when
 * the worker stops (LIFE-END-3): the handle is dead by then, and its arena freed. A real app
 * does this with a handle kept in a cache or handed to a background thread.
 * rule: LIFE-END-3 */
#include <stddef.h>

#include "cwsgi.h"

static cwsgi_request *g_kept;
static void bad_end(void *state, cwsgi_request *req, int32_t outcome);
static void bad_stop(void *state, uint32_t worker_id);
static void bad_destroy(void *state);
#define BAD_ON_REQUEST_END bad_end
#define BAD_WORKER_STOP bad_stop
#define BAD_DESTROY bad_destroy
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    bad_start(req, NULL, NULL);
    return g_api->write(req, "kept\n", 5);
}

static void bad_end(void *state, cwsgi_request *req, int32_t outcome)
{
    (void)state, (void)outcome;
    g_kept = req; /* legal to keep the pointer, not to use it */
}

static void bad_stop(void *state, uint32_t worker_id)
{
    (void)state, (void)worker_id;
    if (g_kept != NULL) g_api->write(g_kept, "late\n", 5); /* the one use after the end */
    g_kept = NULL;
}

static void bad_destroy(void *state) { bad_stop(state, 0); /* a process without workers: the same use at destroy */ }
