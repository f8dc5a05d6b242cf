/* bad_other_thread.c: calls the table with its request handle from a helper thread while
 * handle waits for it (THR-2): one thread at a time, but not the request's own. The call is
 * get_user_data, which lint answers itself, so the server never sees the foreign thread.
 * rule: THR-2 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "bad_common.h"

static void *helper(void *req)
{
    return g_api->get_user_data((cwsgi_request *)req); /* not the thread running handle */
}

static int32_t bad_handle(cwsgi_request *req)
{
    pthread_t t;
    void *user = NULL;
    if (pthread_create(&t, NULL, helper, req) == 0) pthread_join(t, &user);
    bad_start(req, NULL, NULL);
    return g_api->write(req, "thread\n", 7);
}
