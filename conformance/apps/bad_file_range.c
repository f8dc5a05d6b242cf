/* bad_file_range.c: send_file of a range that passes the end of the file (RESP-FILE-3): a
 * 6-byte temporary file, 100 bytes asked for. The server refuses it; the app then writes.
 * rule: RESP-FILE-3 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    char path[] = "/tmp/cwsgi-bad-file-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return CWSGI_E_IO;
    unlink(path);
    if (write(fd, "short\n", 6) != 6) {
        close(fd);
        return CWSGI_E_IO;
    }
    bad_start(req, NULL, NULL);
    g_api->send_file(req, fd, 0, 100); /* 94 bytes past the end */
    close(fd);
    return g_api->write(req, "file\n", 5);
}
