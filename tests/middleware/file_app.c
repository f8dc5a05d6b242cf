/*
 * file_app.c: a well-behaved cooperative app that answers every request with the file named by
 * CWSGI_TEST_FILE through send_file, for the test that lint forwards a send_file as a send_file
 * (COMP-LINT-3) and passes the cooperative flag through.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cwsgi.h"

static const cwsgi_server_api *g_api;

static int32_t file_init(const cwsgi_server_api *api, void **state, char *errbuf, size_t errlen)
{
    (void)state, (void)errbuf, (void)errlen;
    g_api = api;
    return CWSGI_OK;
}

static int32_t file_handle(void *state, cwsgi_request *req)
{
    (void)state;
    const char *path = getenv("CWSGI_TEST_FILE");
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return CWSGI_E_IO;
    char len[32];
    int n = snprintf(len, sizeof len, "%lld", (long long)st.st_size);
    cwsgi_header h[] = {{"Content-Length", 14, len, (size_t)n}};
    int32_t rc = g_api->start_response(req, 200, NULL, h, 1, 0);
    if (rc == CWSGI_OK) rc = g_api->send_file(req, fd, 0, -1);
    if (rc == CWSGI_OK) rc = g_api->finish(req);
    close(fd);
    return rc;
}

static const cwsgi_app_desc file_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1,
    .name = "file",
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = file_init,
    .handle = file_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    (void)api;
    *out = &file_desc;
    return CWSGI_OK;
}
