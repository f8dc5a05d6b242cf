/* bad_trailers_early.c: asks for the request trailers before reading the body
 * (EXT-TRAILERS-1): they exist only once read has returned 0. The server answers
 * CWSGI_E_STATE. On a server without the extension (no CWSGI_CAP_REQUEST_TRAILERS) there is
 * nothing to misuse, and no finding.
 * rule: EXT-TRAILERS-1 */
#include "bad_common.h"

static int32_t bad_handle(cwsgi_request *req)
{
    const cwsgi_ext_request_trailers *ext = g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1);
    cwsgi_str name, value;
    char buf[256];
    if (ext != NULL) ext->trailer_at(req, 0, &name, &value); /* the body has not been read */
    while (g_api->read(req, buf, sizeof buf) > 0) {
    }
    if (ext != NULL) ext->trailer_at(req, 0, &name, &value); /* now legal: CWSGI_E_NOTFOUND */
    bad_start(req, NULL, NULL);
    return g_api->write(req, "trailers\n", 9);
}
