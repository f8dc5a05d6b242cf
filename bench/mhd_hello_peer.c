/*
 * mhd_hello_peer: a bare libmicrohttpd server that answers every request with
 * "Hello, World!\n", the peer that bench/run-mhd.sh measures the microhttpd adapter against.
 *
 * It is what a careful libmicrohttpd user would write for the same job, and it runs
 * libmicrohttpd the way the adapter does: the caller's listening socket (non-blocking, on
 * 127.0.0.1), epoll event-loop threads (MHD_USE_EPOLL_INTERNAL_THREAD) in a pool of --threads,
 * and the same response as apps/hello (200, text/plain; charset=utf-8, Content-Length 14,
 * keep-alive). The response is queued on the second access-handler call, because
 * libmicrohttpd 0.9.75 closes the connection after a response queued on the first one.
 *
 * Usage: bench_mhd_hello_peer [--port N] [--threads N]
 * Prints "Listening at: http://127.0.0.1:PORT (pid N)" on stderr once it accepts (the line
 * cwsgi-serve prints, so one script can wait for both), then serves until SIGTERM or SIGINT.
 */
#define _POSIX_C_SOURCE 200809L
#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char k_body[] = "Hello, World!\n";

/* Marks "first call seen" in *con_cls; any non-NULL address works. */
static int g_first_call_marker;

/*
 * The access handler: remembers the first call, answers on the second.
 * Returns MHD_YES, or MHD_NO when the response cannot be queued (libmicrohttpd then closes).
 * Threads: libmicrohttpd's event-loop threads; `cls` is the shared, read-only response.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &g_first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is read and dropped */
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, (struct MHD_Response *)cls);
}

/*
 * Opens a non-blocking listening socket on 127.0.0.1:port (0 = any free port).
 * Returns the descriptor and stores the bound port, or -1 with errno set.
 */
static int open_listener(int port, int *bound)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 2048) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0, bound = 0, threads = 4, i, sig = 0, fd;
    sigset_t stop;
    struct MHD_Response *resp;
    struct MHD_Daemon *d;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: %s [--port N] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1) threads = 1;

    /* Block the stop signals before libmicrohttpd starts its threads, so that only
     * sigwait() below sees them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    fd = open_listener(port, &bound);
    if (fd < 0) {
        perror("listen");
        return 1;
    }
    resp = MHD_create_response_from_buffer(sizeof k_body - 1, (void *)k_body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL || MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8") != MHD_YES) {
        fprintf(stderr, "cannot build the response\n");
        return 1;
    }
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, &on_request, resp,
                         MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "libmicrohttpd did not start\n");
        return 1;
    }
    fprintf(stderr, "Listening at: http://127.0.0.1:%d (%ld)\n", bound, (long)getpid());
    fflush(stderr);
    while (sigwait(&stop, &sig) != 0) {
    }
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    close(fd);
    return 0;
}
