/*
 * upstream: how a cooperative app talks to another service, in C. It declares the cooperative
 * promise (CWSGI_APP_COOPERATIVE, so abi_minor 1: THR-5) and keeps it while it calls an
 * upstream over TCP: the socket is non-blocking, and every wait (the connect in progress, a
 * full send buffer, a reply not there yet) goes through api->wait_fd, never through its own
 * poll() or a blocking call (THR-6). In cooperative mode the request's fiber then yields and
 * the event loop serves other requests meanwhile; in threads mode the same calls poll on the
 * request's thread, so the app is correct in both modes.
 *
 * Configuration, read once in init (the name is resolved there, since getaddrinfo blocks):
 *   UPSTREAM=HOST:PORT          the service to call, e.g. 127.0.0.1:9000 (required);
 *   UPSTREAM_TIMEOUT_MS=N       the budget of one call, connect to last byte (default 5000).
 *
 * Routes:
 *   GET /fetch   connects, sends "FETCH <request_id>\n", reads the reply until the upstream
 *                closes (at most 64 KiB) and answers 200 with those bytes; 502 when the
 *                connect fails, the connection breaks or the reply is too long; 504 when the
 *                budget runs out. CWSGI_E_SHUTDOWN or CWSGI_E_DISCONNECTED from wait_fd end the
 *                call and handle() returns that code. The socket is closed on every path.
 *   GET /health  answers "ok\n" at once, without touching the upstream.
 * The only state is written in init, before any request, so the app declares itself
 * thread-safe.
 */
#define _POSIX_C_SOURCE 200809L
#include <cwsgi.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UPSTREAM_MAX_REPLY (64 * 1024)
#define UPSTREAM_DEFAULT_TIMEOUT_MS 5000

/* Set once by upstream_init, read-only afterwards. */
static const cwsgi_server_api *g_api;
static struct sockaddr_storage g_addr;
static socklen_t g_addr_len;
static int32_t g_timeout_ms = UPSTREAM_DEFAULT_TIMEOUT_MS;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Resolves UPSTREAM and reads UPSTREAM_TIMEOUT_MS.
 * Returns CWSGI_OK, or CWSGI_E_INVAL with a one-line reason in errbuf (the server then refuses
 * to start: LIFE-LOAD-2). Threads: the loader's thread (LIFE-LOAD-1).
 */
static int32_t upstream_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    g_api = api;
    *app_state = NULL;
    const char *spec = getenv("UPSTREAM");
    const char *colon = spec != NULL ? strrchr(spec, ':') : NULL;
    if (colon == NULL || colon == spec || colon[1] == '\0') {
        snprintf(errbuf, errlen, "UPSTREAM must be HOST:PORT (e.g. 127.0.0.1:9000), not '%s'",
                 spec != NULL ? spec : "(unset)");
        return CWSGI_E_INVAL;
    }
    char host[256];
    size_t host_len = (size_t)(colon - spec);
    if (host_len >= sizeof host) {
        snprintf(errbuf, errlen, "UPSTREAM host is longer than %zu bytes", sizeof host - 1);
        return CWSGI_E_INVAL;
    }
    memcpy(host, spec, host_len);
    host[host_len] = '\0';
    const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(errbuf, errlen, "UPSTREAM '%s': %s", spec, gai_strerror(gai));
        return CWSGI_E_INVAL;
    }
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addr_len = res->ai_addrlen;
    freeaddrinfo(res);

    const char *timeout = getenv("UPSTREAM_TIMEOUT_MS");
    if (timeout != NULL) {
        char *end = NULL;
        long ms = strtol(timeout, &end, 10);
        if (end == timeout || *end != '\0' || ms < 1 || ms > 600000) {
            snprintf(errbuf, errlen, "UPSTREAM_TIMEOUT_MS must be 1..600000, not '%s'", timeout);
            return CWSGI_E_INVAL;
        }
        g_timeout_ms = (int32_t)ms;
    }
    return CWSGI_OK;
}

/*
 * Waits through the server until fd is ready for `events` or the call's deadline passes.
 * Returns the ready events (> 0), CWSGI_E_TIMEOUT, or what wait_fd returned (CWSGI_E_SHUTDOWN,
 * CWSGI_E_DISCONNECTED, ...). This is the only place the app waits.
 */
static int32_t wait_ready(cwsgi_request *req, int fd, uint32_t events, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0) {
        return CWSGI_E_TIMEOUT;
    }
    return g_api->wait_fd(req, fd, events, (int32_t)left);
}

/*
 * One call on the connected-or-connecting socket fd: finishes the connect, sends `msg`, and
 * reads the reply into buf until the upstream closes.
 * Returns CWSGI_OK with *len set; CWSGI_E_IO when the connect fails, the connection breaks or
 * the reply passes cap (*why names the step); CWSGI_E_TIMEOUT; or wait_fd's error.
 * Ownership: fd, msg and buf stay the caller's.
 */
static int32_t call_upstream(cwsgi_request *req, int fd, const char *msg, size_t msg_len, char *buf, size_t cap,
                             size_t *len, const char **why)
{
    int64_t deadline = now_ms() + g_timeout_ms;
    int32_t rc;
    *why = "connect";
    if (connect(fd, (const struct sockaddr *)&g_addr, g_addr_len) != 0) {
        if (errno != EINPROGRESS) {
            return CWSGI_E_IO;
        }
        /* A non-blocking connect reports its end as writability; SO_ERROR says how it went. */
        if ((rc = wait_ready(req, fd, CWSGI_WAIT_WRITE, deadline)) < 0) {
            return rc;
        }
        int err = 0;
        socklen_t err_len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0 || err != 0) {
            errno = err;
            return CWSGI_E_IO;
        }
    }
    *why = "send";
    for (size_t sent = 0; sent < msg_len;) {
        ssize_t n = send(fd, msg + sent, msg_len - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if ((rc = wait_ready(req, fd, CWSGI_WAIT_WRITE, deadline)) < 0) {
                return rc;
            }
        } else if (errno != EINTR) {
            return CWSGI_E_IO;
        }
    }
    *why = "receive";
    *len = 0;
    for (;;) {
        /* One byte of room more than allowed, so that a reply over the limit is seen. */
        ssize_t n = recv(fd, buf + *len, cap + 1 - *len, 0);
        if (n == 0) {
            return CWSGI_OK;
        } else if (n > 0) {
            *len += (size_t)n;
            if (*len > cap) {
                *why = "reply over 64 KiB";
                errno = EMSGSIZE;
                return CWSGI_E_IO;
            }
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if ((rc = wait_ready(req, fd, CWSGI_WAIT_READ, deadline)) < 0) {
                return rc;
            }
        } else if (errno != EINTR) {
            return CWSGI_E_IO;
        }
    }
}

/*
 * Sends a whole text response with a Content-Length (and "Allow: GET" on a 405).
 * Returns CWSGI_OK or the server's code from start_response or write.
 */
static int32_t respond(cwsgi_request *req, uint32_t status, const char *body, size_t len)
{
    static const char k_type[] = "text/plain; charset=utf-8";
    char len_str[24];
    int len_n = snprintf(len_str, sizeof len_str, "%zu", len);
    const cwsgi_header headers[] = {
        {"Content-Type", 12, k_type, sizeof k_type - 1},
        {"Content-Length", 14, len_str, (size_t)len_n},
        {"Allow", 5, "GET", 3},
    };
    int32_t rc = g_api->start_response(req, status, NULL, headers, status == 405 ? 3 : 2, 0);
    if (rc != CWSGI_OK) {
        return rc;
    }
    return g_api->write(req, body, len);
}

/*
 * GET /fetch: one upstream call, answered 200, 502 or 504.
 * Returns CWSGI_OK, or a negative code (CWSGI_E_SHUTDOWN, CWSGI_E_DISCONNECTED, CWSGI_E_NOMEM,
 * a failed write) after the socket is closed.
 */
static int32_t handle_fetch(cwsgi_request *req)
{
    cwsgi_request_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    g_api->request_info(req, &info);
    char msg[40];
    int msg_len = snprintf(msg, sizeof msg, "FETCH %llu\n", (unsigned long long)info.request_id);
    /* From the request's arena: freed by the server, and off the fiber's bounded stack. */
    char *buf = g_api->alloc(req, UPSTREAM_MAX_REPLY + 1);
    if (buf == NULL) {
        return CWSGI_E_NOMEM;
    }

    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return CWSGI_E_IO;
    }
    size_t len = 0;
    const char *why = "";
    int32_t rc = call_upstream(req, fd, msg, (size_t)msg_len, buf, UPSTREAM_MAX_REPLY, &len, &why);
    int saved_errno = errno;
    close(fd); /* the one close, for every outcome of the call */

    if (rc == CWSGI_OK) {
        return respond(req, 200, buf, len);
    }
    char line[160];
    int line_n;
    if (rc == CWSGI_E_TIMEOUT) {
        line_n = snprintf(line, sizeof line, "upstream: no reply within %d ms (%s)", (int)g_timeout_ms, why);
        g_api->log(req, CWSGI_LOG_WARNING, line, (size_t)line_n);
        return respond(req, 504, "upstream timed out\n", 19);
    }
    if (rc == CWSGI_E_IO) {
        line_n = snprintf(line, sizeof line, "upstream: %s: %s", why, strerror(saved_errno));
        g_api->log(req, CWSGI_LOG_WARNING, line, (size_t)line_n);
        return respond(req, 502, "upstream failed\n", 16);
    }
    /* CWSGI_E_SHUTDOWN, CWSGI_E_DISCONNECTED: nobody to answer, or no time left to. */
    return rc;
}

/*
 * Routes GET /fetch and GET /health; 405 for another method on them, 404 elsewhere.
 * Threads: any request thread or fiber, concurrently (CWSGI_THREADS_SAFE).
 */
static int32_t upstream_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    cwsgi_str path, method;
    if (g_api->environ_get(req, "PATH_INFO", &path) != CWSGI_OK ||
        g_api->environ_get(req, "REQUEST_METHOD", &method) != CWSGI_OK) {
        return CWSGI_E_APP;
    }
    int is_fetch = strcmp(path.ptr, "/fetch") == 0;
    int is_health = strcmp(path.ptr, "/health") == 0;
    if (!is_fetch && !is_health) {
        return respond(req, 404, "not found\n", 10);
    }
    if (strcmp(method.ptr, "GET") != 0) {
        return respond(req, 405, "use GET\n", 8);
    }
    return is_fetch ? handle_fetch(req) : respond(req, 200, "ok\n", 3);
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* wait_fd and the flags field are 1.1 */
    .name = "upstream",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = upstream_init,
    .handle = upstream_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
