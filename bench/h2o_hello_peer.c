/*
 * h2o_hello_peer.c: a bare libh2o hello server, the peer bench/run-h2o.sh measures the h2o
 * adapter against. It is built the way the adapter runs libh2o (h2o 2.2.5, evloop): one
 * h2o_globalconf_t, and per loop thread one h2o_evloop_t and h2o_context_t with its own dup()
 * of the listening socket. Every request gets the answer apps/hello gives ("Hello, World!\n",
 * text/plain, a Content-Length), written from the handler, over HTTP/1.1 or h2c.
 *
 * Usage: bench_h2o_hello_peer PORT [LOOP_THREADS]   (loopback only; runs until killed)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>

static h2o_globalconf_t config;

struct loop {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    int listen_fd;
    pthread_t thread;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    static h2o_iovec_t body = {"Hello, World!\n", 14};
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
                   H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop *l = listener->data;
    int i;
    if (err != NULL) return;
    for (i = 0; i < 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) break;
        h2o_accept(&l->accept, sock);
    }
}

static void *run(void *arg)
{
    struct loop *l = arg;
    h2o_socket_t *sock;
    h2o_context_init(&l->ctx, h2o_evloop_create(), &config);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = config.hosts;
    sock = h2o_evloop_socket_create(l->ctx.loop, l->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = l;
    h2o_socket_read_start(sock, on_accept);
    for (;;) h2o_evloop_run(l->ctx.loop, INT32_MAX);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    int fd, one = 1, n, i;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;
    struct loop *loops;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [LOOP_THREADS]\n", argv[0]);
        return 2;
    }
    n = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 1 || n > 256) n = 1;
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("")); /* the adapter sends no Server either */
    host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 2048) != 0) {
        perror("bench_h2o_hello_peer: listen");
        return 1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    loops = calloc((size_t)n, sizeof *loops);
    if (loops == NULL) return 1;
    for (i = 0; i < n; ++i) {
        loops[i].listen_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        pthread_create(&loops[i].thread, NULL, run, &loops[i]);
    }
    printf("listening on 127.0.0.1:%s with %d loop thread(s)\n", argv[1], n);
    fflush(stdout);
    pthread_join(loops[0].thread, NULL);
    return 0;
}
