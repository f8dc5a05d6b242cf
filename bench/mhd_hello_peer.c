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
 * With --offload it answers the way a careful libmicrohttpd user must when the app may block
 * (spec rule THR-4): the event loop never computes the answer. It suspends the connection
 * (MHD_suspend_connection), hands the request to one of --threads worker threads through a
 * mutex-and-condition-variable queue, and the worker marks it answered and resumes the
 * connection (MHD_resume_connection); the event loop then queues the response. The event-loop
 * threads are then as many as the adapter uses: half the CPUs, at least 1, at most --threads.
 * This peer has the adapter's threading model and nothing else, so the adapter's ratio to it is
 * the cost of the adapter itself, and its ratio to the plain peer is the cost of the model.
 *
 * Usage: bench_mhd_hello_peer [--port N] [--threads N] [--offload 0|1]
 * Prints "Listening at: http://127.0.0.1:PORT (pid N)" on stderr once it accepts (the line
 * cwsgi-serve prints, so one script can wait for both), then serves until SIGTERM or SIGINT.
 */
#define _POSIX_C_SOURCE 200809L
#include <microhttpd.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* --offload: one request waiting for a worker. */
struct offload_req {
    atomic_int answered; /* set by the worker before it resumes the connection */
    int submitted;       /* event-loop thread only */
    struct MHD_Connection *conn;
    struct offload_req *next; /* queue link, guarded by g_queue.mu */
};

/* --offload: the hand-off queue between the event loop and the workers. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct offload_req *head, *tail;
} g_queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL};

/*
 * The worker threads of --offload: take a request, "run the app" (the answer is the shared
 * response, so there is nothing to compute), mark it answered and resume its connection.
 * They run until the process exits.
 */
static void *offload_worker(void *arg)
{
    (void)arg;
    for (;;) {
        struct offload_req *r;
        pthread_mutex_lock(&g_queue.mu);
        while (g_queue.head == NULL) pthread_cond_wait(&g_queue.cv, &g_queue.mu);
        r = g_queue.head;
        g_queue.head = r->next;
        if (g_queue.head == NULL) g_queue.tail = NULL;
        pthread_mutex_unlock(&g_queue.mu);
        atomic_store(&r->answered, 1);
        MHD_resume_connection(r->conn);
    }
    return NULL;
}

/*
 * The access handler of --offload. First call: allocate the request's state. Body chunks:
 * dropped. Final call: queue the response once a worker answered, else suspend and hand the
 * request to a worker. Threads: libmicrohttpd's event-loop threads.
 */
static enum MHD_Result on_request_offload(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                          const char *version, const char *upload_data, size_t *upload_data_size,
                                          void **con_cls)
{
    struct offload_req *r = *con_cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) return MHD_NO;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (atomic_load(&r->answered)) return MHD_queue_response(conn, MHD_HTTP_OK, (struct MHD_Response *)cls);
    if (!r->submitted) {
        r->submitted = 1;
        r->conn = conn;
        MHD_suspend_connection(conn); /* before the hand-off, so the resume always follows it */
        pthread_mutex_lock(&g_queue.mu);
        if (g_queue.tail != NULL) {
            g_queue.tail->next = r;
        } else {
            g_queue.head = r;
        }
        g_queue.tail = r;
        pthread_cond_signal(&g_queue.cv);
        pthread_mutex_unlock(&g_queue.mu);
    }
    return MHD_YES;
}

/* --offload: frees a request's state when libmicrohttpd is done with it. */
static void on_completed_offload(void *cls, struct MHD_Connection *conn, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
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
    int port = 0, bound = 0, threads = 4, offload = 0, io_threads, i, sig = 0, fd;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sigset_t stop;
    struct MHD_Response *resp;
    struct MHD_Daemon *d;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--offload") == 0) {
            offload = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: %s [--port N] [--threads N] [--offload 0|1]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    /* The adapter's rule for its event-loop threads (adapters/microhttpd/server.cc). */
    io_threads = offload ? (int)(cpus / 2) : threads;
    if (io_threads > threads) io_threads = threads;
    if (io_threads < 1) io_threads = 1;

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
    if (offload) {
        for (i = 0; i < threads; ++i) {
            pthread_t t;
            if (pthread_create(&t, NULL, &offload_worker, NULL) != 0) {
                fprintf(stderr, "cannot start a worker thread\n");
                return 1;
            }
            pthread_detach(t);
        }
    }
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (offload ? MHD_ALLOW_SUSPEND_RESUME : 0),
                         0, NULL, NULL, offload ? &on_request_offload : &on_request, resp, MHD_OPTION_LISTEN_SOCKET,
                         (MHD_socket)fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)io_threads,
                         MHD_OPTION_NOTIFY_COMPLETED, offload ? &on_completed_offload : NULL, NULL,
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
