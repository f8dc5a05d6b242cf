/*
 * probe.c: the conformance probe, one CWSGI app whose endpoints exercise every rule of the
 * spec so that cwsgi-conformance can check any server from the outside.
 *
 * The driver talks to it over HTTP only. Every endpoint lives under /t/<name> and dispatches
 * on PATH_INFO; every other path (including "*" and the gunicorn corpus targets) answers with
 * the environ, the header list, request_info and the request body as JSON, so that a request
 * of any shape can be checked field by field. What cannot be seen on the wire (the return
 * codes of API calls made after commit, the outcome given to on_request_end, worker_start)
 * is recorded in bookkeeping under a tag the driver chooses (?tag=NAME) and read back with
 * GET /t/stats?tag=NAME. Bookkeeping requests (/t/stats, /t/caps) are not counted, so
 * "handled" tells the driver exactly how many of its requests reached the app. When
 * $CWSGI_PROBE_SHARED names a file, the bookkeeping lives in a shared mapping of it, so that
 * every worker process of a server (-w N) counts into it and any of them answers /t/stats for
 * all; without it, it is this process's own.
 *
 * Endpoints (query parameters in brackets; all optional):
 *   /t/env       environ + headers + info + body as JSON [r=read size, tag]
 *   /t/echo      streams the body back [r, cl=1 to declare the request's Content-Length]
 *   /t/read      reads the body, answers its length and FNV-1a hash [r, tag; answer=1: a
 *                200 report even after a read error, instead of failing before commit]
 *   /t/stream    n writes of m pattern bytes [n, m, delay_ms, pre_delay_ms, cl=1, tag]
 *   /t/file      send_file of a generated file [n=file size, offset, count, cl=0, tag]
 *   /t/status    chosen status and headers [s, h=Name:Value (repeatable), body, cl, tag,
 *                pre_delay_ms, report_shutdown=1 adds X-Shutting-Down at the first write]
 *   /t/fail      returns CWSGI_E_APP [when=before|started|after, cl, w=bytes written, tag];
 *                when=none returns CWSGI_OK without any start_response
 *   /t/length    Content-Length overrun or underrun [mode=over|under, implicit=1, tag]
 *   /t/misuse    start_response/write/finish misuse, codes as JSON [tag]
 *   /t/info      send_informational [code=103, tag]
 *   /t/disconnect  streams (mode=write) or polls (mode=poll) until the client is gone [tag]
 *   /t/expect    mode=read reads the body; mode=417|200 answers without reading [delay_ms]
 *   /t/sleep     sleeps ms milliseconds, then answers [ms]
 *   /t/log       writes msg to the error log with the request handle [msg]
 *   /t/stats     bookkeeping [tag]
 *   /t/caps      api->capabilities and server_info
 * Stream and file bytes follow probe_pattern(offset), which the driver recomputes.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cwsgi.h"

/* ---------------------------------------------------------------------------------------- */
/* Small utilities                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* The byte at absolute offset i of every stream and file the probe produces. A multiplicative
 * hash, so that a slice taken at the wrong offset never matches by accident. */
static unsigned char probe_pattern(uint64_t i)
{
    uint32_t x = (uint32_t)i * UINT32_C(2654435761);
    return (unsigned char)(x >> 24);
}

static void fill_pattern(unsigned char *buf, size_t n, uint64_t offset)
{
    size_t k;
    for (k = 0; k < n; k++) {
        buf[k] = probe_pattern(offset + k);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts;
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms % 1000) * 1000000);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* FNV-1a 64, the upload checksum the driver recomputes. */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    size_t k;
    for (k = 0; k < n; k++) {
        h ^= p[k];
        h *= UINT64_C(1099511628211);
    }
    return h;
}
#define FNV_INIT UINT64_C(14695981039346656037)

/* ---------------------------------------------------------------------------------------- */
/* JSON builder: a growing buffer. Separators are inserted automatically: a value or key      */
/* gets a comma unless it follows '{', '[' or ':'. Strings are written byte-for-byte as       */
/* Latin-1 code points (bytes >= 0x80 become \u00XX), so any byte string round-trips.         */
/* ---------------------------------------------------------------------------------------- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static void jb_raw(jbuf *j, const char *s, size_t n)
{
    if (j->oom) {
        return;
    }
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        char *np;
        while (cap < j->len + n + 1) {
            cap *= 2;
        }
        np = (char *)realloc(j->p, cap);
        if (np == NULL) {
            j->oom = 1;
            return;
        }
        j->p = np;
        j->cap = cap;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = '\0';
}

static void jb_lit(jbuf *j, const char *s) { jb_raw(j, s, strlen(s)); }

static void jb_sep(jbuf *j)
{
    if (j->len > 0) {
        char c = j->p[j->len - 1];
        if (c != '{' && c != '[' && c != ':') {
            jb_raw(j, ",", 1);
        }
    }
}

static void jb_str_raw(jbuf *j, const char *s, size_t n)
{
    size_t k;
    char tmp[8];
    jb_raw(j, "\"", 1);
    for (k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            jb_raw(j, tmp, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)c);
            jb_raw(j, tmp, 6);
        } else {
            jb_raw(j, (const char *)&c, 1);
        }
    }
    jb_raw(j, "\"", 1);
}

static void jb_str(jbuf *j, const char *s, size_t n)
{
    jb_sep(j);
    jb_str_raw(j, s, n);
}

static void jb_key(jbuf *j, const char *k)
{
    jb_sep(j);
    jb_str_raw(j, k, strlen(k));
    jb_raw(j, ":", 1);
}

static void jb_int(jbuf *j, int64_t v)
{
    char tmp[32];
    jb_sep(j);
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    jb_lit(j, tmp);
}

static void jb_uint(jbuf *j, uint64_t v)
{
    char tmp[32];
    jb_sep(j);
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    jb_lit(j, tmp);
}

static void jb_open(jbuf *j, const char *brace)
{
    jb_sep(j);
    jb_lit(j, brace);
}

static void jb_kint(jbuf *j, const char *k, int64_t v)
{
    jb_key(j, k);
    jb_int(j, v);
}

static void jb_kstr(jbuf *j, const char *k, const char *s, size_t n)
{
    jb_key(j, k);
    jb_str(j, s, n);
}

static void jb_pair(jbuf *j, cwsgi_str a, cwsgi_str b)
{
    jb_open(j, "[");
    jb_str(j, a.ptr, a.len);
    jb_str(j, b.ptr, b.len);
    jb_lit(j, "]");
}

static void jb_b64(jbuf *j, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k;
    char o[4];
    jb_sep(j);
    jb_raw(j, "\"", 1);
    for (k = 0; k + 2 < n; k += 3) {
        uint32_t v = ((uint32_t)p[k] << 16) | ((uint32_t)p[k + 1] << 8) | p[k + 2];
        o[0] = tab[(v >> 18) & 63];
        o[1] = tab[(v >> 12) & 63];
        o[2] = tab[(v >> 6) & 63];
        o[3] = tab[v & 63];
        jb_raw(j, o, 4);
    }
    if (n - k == 1) {
        uint32_t v = (uint32_t)p[k] << 16;
        o[0] = tab[(v >> 18) & 63];
        o[1] = tab[(v >> 12) & 63];
        o[2] = '=';
        o[3] = '=';
        jb_raw(j, o, 4);
    } else if (n - k == 2) {
        uint32_t v = ((uint32_t)p[k] << 16) | ((uint32_t)p[k + 1] << 8);
        o[0] = tab[(v >> 18) & 63];
        o[1] = tab[(v >> 12) & 63];
        o[2] = tab[(v >> 6) & 63];
        o[3] = '=';
        jb_raw(j, o, 4);
    }
    jb_raw(j, "\"", 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Query strings: ?a=1&h=X-A:1&h=X-B:2. Values are percent-decoded ('+' stays '+').          */
/* ---------------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Finds the nth value of `name`; decodes it into out (NUL-terminated, truncated to cap-1).
 * Returns its decoded length, or -1 when absent. */
static long qs_get(cwsgi_str qs, const char *name, int nth, char *out, size_t cap)
{
    size_t nlen = strlen(name), i = 0;
    while (i <= qs.len) {
        size_t end = i, eq;
        while (end < qs.len && qs.ptr[end] != '&') end++;
        eq = i;
        while (eq < end && qs.ptr[eq] != '=') eq++;
        if (eq - i == nlen && memcmp(qs.ptr + i, name, nlen) == 0) {
            if (nth-- == 0) {
                size_t o = 0, k = (eq < end) ? eq + 1 : end;
                while (k < end) {
                    char c = qs.ptr[k];
                    if (c == '%' && k + 2 < end && hexval(qs.ptr[k + 1]) >= 0 && hexval(qs.ptr[k + 2]) >= 0) {
                        c = (char)(hexval(qs.ptr[k + 1]) * 16 + hexval(qs.ptr[k + 2]));
                        k += 3;
                    } else {
                        k++;
                    }
                    if (o + 1 < cap) out[o] = c;
                    o++;
                }
                if (cap > 0) out[o < cap ? o : cap - 1] = '\0';
                return (long)o;
            }
        }
        i = end + 1;
    }
    return -1;
}

static int64_t qs_int(cwsgi_str qs, const char *name, int64_t dflt)
{
    char buf[32];
    if (qs_get(qs, name, 0, buf, sizeof buf) <= 0) {
        return dflt;
    }
    return (int64_t)strtoll(buf, NULL, 10);
}

/* ---------------------------------------------------------------------------------------- */
/* Bookkeeping                                                                               */
/* ---------------------------------------------------------------------------------------- */

#define MAX_TAGS 256
#define TAG_LEN 64
#define NOTES_LEN 1536
#define DOC_MAX (256 * 1024)
#define DOC_SLOTS 16
#define MAX_PROCS 64
#define MAX_FILES 8
#define SHARED_ENV "CWSGI_PROBE_SHARED"
#define SHARED_MAGIC UINT32_C(0x70726f62) /* "prob" */

typedef struct tag_rec {
    char tag[TAG_LEN];
    int used;
    int ends;              /* on_request_end calls for requests carrying this tag */
    int32_t outcome;       /* the last outcome */
    char notes[NOTES_LEN]; /* JSON members, "k":v,... */
    size_t notes_len;
    int doc; /* index in probe_shared.docs of its JSON document, or -1 */
} tag_rec;

/* One process that ran worker_start: its own counts, as the driver checks them per worker. */
typedef struct proc_rec {
    int32_t pid;        /* 0: a free record */
    uint32_t worker_id; /* the id worker_start got */
    uint64_t inits, worker_starts, worker_stops, handled, ends;
} proc_rec;

/* The bookkeeping every worker of one server shares. With $CWSGI_PROBE_SHARED set (the driver
 * sets it for each server it starts) this lives in a MAP_SHARED mapping of that file, so the
 * counts and tags aggregate across worker processes (the driver's requests land on any of
 * them); without it, in this process's memory. `state` is 0 in a fresh file, 1 while the first
 * process to map it sets it up, 2 once it is ready; the mutex is process-shared and robust, so
 * a worker that dies holding it does not stall the others. */
typedef struct probe_shared {
    _Atomic uint32_t state;
    uint32_t magic;
    uint64_t size;
    pthread_mutex_t mu;
    uint64_t handled, ends, read_errors, handled_before_worker_start;
    uint64_t outcome_ok, outcome_disc, outcome_aborted, outcome_app, outcome_other;
    tag_rec tags[MAX_TAGS];
    unsigned next_tag;
    proc_rec procs[MAX_PROCS];
    unsigned next_doc;
    struct {
        int owner; /* the tag slot that holds it, or -1 */
        char text[DOC_MAX + 1];
    } docs[DOC_SLOTS];
} probe_shared;

/* What belongs to this process alone. Under --preload the master's copy is inherited at fork,
 * so "inits" is 1 in each worker, as the process's memory says. */
typedef struct probe_state {
    pthread_mutex_t mu; /* files */
    probe_shared *sh;
    size_t sh_len; /* the mapping's length; 0 when sh is this process's own memory */
    proc_rec *me;  /* this process's record, from worker_start on (under sh->mu) */
    uint64_t inits, worker_starts, worker_stops, handled, ends; /* under sh->mu */
    uint32_t last_worker_id;
    struct {
        int64_t size;
        int fd;
    } files[MAX_FILES];
} probe_state;

/* Per-request state, in the request's arena. */
typedef struct rctx {
    int slot;               /* tag slot or -1 */
    int bookkeeping;        /* /t/stats, /t/caps: not counted */
    int user_data_was_null; /* get_user_data returned NULL before set_user_data (MEM-USER-1) */
} rctx;

static const cwsgi_server_api *g_api;

static void sh_lock(probe_state *p)
{
    if (pthread_mutex_lock(&p->sh->mu) == EOWNERDEAD) {
        pthread_mutex_consistent(&p->sh->mu); /* a worker died holding it; the counts stand */
    }
}

static void sh_unlock(probe_state *p) { pthread_mutex_unlock(&p->sh->mu); }

/* Sets up a fresh probe_shared: a process-shared robust mutex, no tags, no documents. */
static int shared_setup(probe_shared *sh)
{
    pthread_mutexattr_t a;
    int k, rc;
    if (pthread_mutexattr_init(&a) != 0) return -1;
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&sh->mu, &a);
    pthread_mutexattr_destroy(&a);
    for (k = 0; k < MAX_TAGS; k++) sh->tags[k].doc = -1;
    for (k = 0; k < DOC_SLOTS; k++) sh->docs[k].owner = -1;
    sh->magic = SHARED_MAGIC;
    sh->size = sizeof *sh;
    return rc == 0 ? 0 : -1;
}

/* Maps the bookkeeping file `path` (created when absent, grown to size; the pages stay sparse
 * until written). The first process to map it sets it up; the others wait for that, up to 5 s.
 * Returns the mapping, or NULL with errbuf filled. */
static probe_shared *shared_map(const char *path, char *errbuf, size_t errlen)
{
    struct stat st;
    probe_shared *sh;
    uint32_t fresh = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), k;
    if (fd < 0 || fstat(fd, &st) != 0 || (st.st_size < (off_t)sizeof *sh && ftruncate(fd, (off_t)sizeof *sh) != 0)) {
        snprintf(errbuf, errlen, "probe: %s=%s: %s", SHARED_ENV, path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    sh = (probe_shared *)mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (sh == MAP_FAILED) {
        snprintf(errbuf, errlen, "probe: mmap %s: %s", path, strerror(errno));
        return NULL;
    }
    if (atomic_compare_exchange_strong(&sh->state, &fresh, 1)) {
        if (shared_setup(sh) != 0) {
            snprintf(errbuf, errlen, "probe: cannot set up the shared mutex in %s", path);
            munmap(sh, sizeof *sh);
            return NULL;
        }
        atomic_store(&sh->state, 2);
    }
    for (k = 0; k < 5000 && atomic_load(&sh->state) != 2; k++) {
        sleep_ms(1);
    }
    if (atomic_load(&sh->state) != 2 || sh->magic != SHARED_MAGIC || sh->size != sizeof *sh) {
        snprintf(errbuf, errlen, "probe: %s is not this probe's bookkeeping file (or its setup stalled)", path);
        munmap(sh, sizeof *sh);
        return NULL;
    }
    return sh;
}

/* This process's record, claimed on first use; the caller holds sh->mu. NULL when all
 * MAX_PROCS records are taken (the driver then sees fewer processes than workers). */
static proc_rec *proc_claim_locked(probe_state *p)
{
    int32_t pid = (int32_t)getpid();
    int k;
    for (k = 0; k < MAX_PROCS; k++) {
        if (p->sh->procs[k].pid == pid) return &p->sh->procs[k];
    }
    for (k = 0; k < MAX_PROCS; k++) {
        if (p->sh->procs[k].pid == 0) {
            p->sh->procs[k].pid = pid;
            return &p->sh->procs[k];
        }
    }
    return NULL;
}

/* Copies this process's own counts into its record; the caller holds sh->mu. */
static void proc_publish_locked(probe_state *p)
{
    if (p->me == NULL) return;
    p->me->worker_id = p->last_worker_id;
    p->me->inits = p->inits;
    p->me->worker_starts = p->worker_starts;
    p->me->worker_stops = p->worker_stops;
    p->me->handled = p->handled;
    p->me->ends = p->ends;
}

/* Sleeps through the server when it can (ABI 1.1 wait_fd with fd -1), so that the probe keeps
 * the cooperative promise and can be served with -k gevent (THR-5); on a 1.0 server, which runs
 * every app on threads, a plain sleep is right. Ends early at the graceful deadline. */
static void probe_sleep(cwsgi_request *req, int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    if (CWSGI_API_HAS(g_api, wait_fd)) {
        (void)g_api->wait_fd(req, -1, 0, (int32_t)(ms > INT32_MAX ? INT32_MAX : ms));
        return;
    }
    sleep_ms(ms);
}

/* Finds or creates the slot for `tag`; the caller holds sh->mu. Oldest slots are reused. */
static int tag_slot_locked(probe_state *p, const char *tag, int create)
{
    probe_shared *sh = p->sh;
    int k;
    for (k = 0; k < MAX_TAGS; k++) {
        if (sh->tags[k].used && strcmp(sh->tags[k].tag, tag) == 0) {
            return k;
        }
    }
    if (!create) {
        return -1;
    }
    k = (int)(sh->next_tag++ % MAX_TAGS);
    if (sh->tags[k].doc >= 0) sh->docs[sh->tags[k].doc].owner = -1;
    memset(&sh->tags[k], 0, sizeof sh->tags[k]);
    sh->tags[k].used = 1;
    sh->tags[k].outcome = INT32_MIN;
    sh->tags[k].doc = -1;
    snprintf(sh->tags[k].tag, TAG_LEN, "%s", tag);
    return k;
}

/* Adds "key":value to the request's tag notes (no-op without a tag). */
static void note_int(probe_state *p, rctx *rc, const char *key, int64_t v)
{
    tag_rec *t;
    int n;
    if (rc == NULL || rc->slot < 0) {
        return;
    }
    sh_lock(p);
    t = &p->sh->tags[rc->slot];
    n = snprintf(t->notes + t->notes_len, NOTES_LEN - t->notes_len, "%s\"%s\":%lld", t->notes_len ? "," : "", key,
                 (long long)v);
    if (n > 0 && t->notes_len + (size_t)n < NOTES_LEN) {
        t->notes_len += (size_t)n;
    } else {
        t->notes[t->notes_len] = '\0';
    }
    sh_unlock(p);
}

/* Keeps the JSON document j for the request's tag, in the oldest of DOC_SLOTS document
 * slots (the tag that held it loses its document). */
static void note_doc(probe_state *p, rctx *rc, const jbuf *j)
{
    probe_shared *sh = p->sh;
    tag_rec *t;
    if (rc == NULL || rc->slot < 0 || j->oom || j->len > DOC_MAX) {
        return;
    }
    sh_lock(p);
    t = &sh->tags[rc->slot];
    if (t->doc < 0) {
        t->doc = (int)(sh->next_doc++ % DOC_SLOTS);
        if (sh->docs[t->doc].owner >= 0) sh->tags[sh->docs[t->doc].owner].doc = -1;
        sh->docs[t->doc].owner = rc->slot;
    }
    memcpy(sh->docs[t->doc].text, j->p, j->len + 1);
    sh_unlock(p);
}

/* ---------------------------------------------------------------------------------------- */
/* Response helpers                                                                          */
/* ---------------------------------------------------------------------------------------- */

static cwsgi_header hdr(const char *n, const char *v)
{
    cwsgi_header h;
    h.name = n;
    h.name_len = strlen(n);
    h.value = v;
    h.value_len = strlen(v);
    return h;
}

/* Sends a complete response with a Content-Length. Returns the first failing code. */
static int32_t respond(cwsgi_request *req, uint32_t status, const char *ctype, const char *body, size_t len)
{
    char cl[32];
    cwsgi_header h[2];
    int32_t rc;
    snprintf(cl, sizeof cl, "%zu", len);
    h[0] = hdr("Content-Type", ctype);
    h[1] = hdr("Content-Length", cl);
    rc = g_api->start_response(req, status, NULL, h, 2, 0);
    if (rc != CWSGI_OK) {
        return rc;
    }
    if (len > 0) {
        rc = g_api->write(req, body, len);
        if (rc != CWSGI_OK) {
            return rc;
        }
    }
    return g_api->finish(req);
}

static int32_t respond_json(cwsgi_request *req, uint32_t status, jbuf *j)
{
    int32_t rc;
    if (j->oom) {
        free(j->p);
        return CWSGI_E_NOMEM;
    }
    rc = respond(req, status, "application/json", j->p, j->len);
    free(j->p);
    j->p = NULL;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Body reading                                                                              */
/* ---------------------------------------------------------------------------------------- */

typedef struct body_result {
    int64_t total;
    int64_t reads;
    int64_t max_read;
    int64_t rc;           /* 0 at a clean end, else the negative code */
    int64_t over_cap;     /* reads that returned more than asked: must stay 0 */
    int64_t after_end[3]; /* read() results after the end (INPUT-READ-2) */
    uint64_t hash;
    unsigned char *keep; /* the first keep_cap bytes, malloc'd */
    size_t kept;
} body_result;

/* Reads the whole body with reads of `rsize` bytes, hashing it and keeping up to keep_cap
 * bytes. After the end it reads three more times to see that the end is sticky. */
static void read_body(probe_state *p, cwsgi_request *req, size_t rsize, size_t keep_cap, body_result *br)
{
    unsigned char *buf;
    int k;
    memset(br, 0, sizeof *br);
    br->hash = FNV_INIT;
    if (rsize == 0) rsize = 65536;
    if (rsize > (1u << 20)) rsize = 1u << 20;
    buf = (unsigned char *)malloc(rsize);
    if (keep_cap > 0) {
        br->keep = (unsigned char *)malloc(keep_cap);
    }
    if (buf == NULL || (keep_cap > 0 && br->keep == NULL)) {
        br->rc = CWSGI_E_NOMEM;
        free(buf);
        return;
    }
    /* Bounded: at most 2^26 reads (64 GiB at 1 KiB each would be far past any test). */
    for (;;) {
        int64_t n = g_api->read(req, buf, rsize);
        if (n <= 0) {
            br->rc = n;
            break;
        }
        br->reads++;
        if ((uint64_t)n > rsize) {
            br->over_cap++;
            n = (int64_t)rsize;
        }
        if (n > br->max_read) br->max_read = n;
        br->hash = fnv1a(br->hash, buf, (size_t)n);
        if (br->kept < keep_cap) {
            size_t c = keep_cap - br->kept < (size_t)n ? keep_cap - br->kept : (size_t)n;
            memcpy(br->keep + br->kept, buf, c);
            br->kept += c;
        }
        br->total += n;
        if (br->reads > (INT64_C(1) << 26)) {
            br->rc = CWSGI_E_BODY;
            break;
        }
    }
    if (br->rc == 0) {
        for (k = 0; k < 3; k++) {
            br->after_end[k] = g_api->read(req, buf, rsize);
        }
    } else {
        sh_lock(p);
        p->sh->read_errors++;
        sh_unlock(p);
    }
    free(buf);
}

static void jb_body_result(jbuf *j, const body_result *br)
{
    jb_kint(j, "body_len", br->total);
    jb_kint(j, "reads", br->reads);
    jb_kint(j, "max_read", br->max_read);
    jb_kint(j, "over_cap", br->over_cap);
    jb_kint(j, "read_rc", br->rc);
    jb_key(j, "after_end");
    jb_open(j, "[");
    jb_int(j, br->after_end[0]);
    jb_int(j, br->after_end[1]);
    jb_int(j, br->after_end[2]);
    jb_lit(j, "]");
    {
        char h[24];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)br->hash);
        jb_kstr(j, "fnv", h, strlen(h));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Endpoints                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void jb_info(jbuf *j, cwsgi_request *req)
{
    cwsgi_request_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    jb_key(j, "info");
    if (g_api->request_info(req, &info) != CWSGI_OK) {
        jb_lit(j, "null");
        return;
    }
    jb_open(j, "{");
    jb_kint(j, "http_major", info.http_major);
    jb_kint(j, "http_minor", info.http_minor);
    jb_kint(j, "is_tls", info.is_tls);
    jb_kint(j, "content_length", info.content_length);
    jb_kstr(j, "method", info.method.ptr, info.method.len);
    jb_kstr(j, "target", info.target.ptr, info.target.len);
    jb_kstr(j, "raw_path", info.raw_path.ptr, info.raw_path.len);
    jb_kstr(j, "script_name", info.script_name.ptr, info.script_name.len);
    jb_kstr(j, "path_info", info.path_info.ptr, info.path_info.len);
    jb_kstr(j, "query_string", info.query_string.ptr, info.query_string.len);
    jb_kstr(j, "scheme", info.scheme.ptr, info.scheme.len);
    jb_kstr(j, "protocol", info.protocol.ptr, info.protocol.len);
    jb_kstr(j, "server_name", info.server_name.ptr, info.server_name.len);
    jb_kstr(j, "server_port", info.server_port.ptr, info.server_port.len);
    jb_kstr(j, "remote_addr", info.remote_addr.ptr, info.remote_addr.len);
    jb_kstr(j, "remote_port", info.remote_port.ptr, info.remote_port.len);
    jb_kstr(j, "local_addr", info.local_addr.ptr, info.local_addr.len);
    jb_kstr(j, "local_port", info.local_port.ptr, info.local_port.len);
    jb_key(j, "request_id");
    jb_uint(j, info.request_id);
    jb_lit(j, "}");
}

/* The environ report: used by /t/env and by every path outside /t/. */
static int32_t h_env(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    jbuf j = {0};
    size_t k;
    cwsgi_str key, val;
    body_result br;
    const cwsgi_ext_request_trailers *tx;

    read_body(p, req, (size_t)qs_int(qs, "r", 65536), 4u << 20, &br);

    jb_open(&j, "{");
    jb_key(&j, "environ");
    jb_open(&j, "[");
    for (k = 0; k < 4096 && g_api->environ_at(req, k, &key, &val) == CWSGI_OK; k++) {
        jb_pair(&j, key, val);
    }
    jb_lit(&j, "]");
    /* environ_get must agree with environ_at for every key (ENV-KEYS-1/2). Keys whose
     * lookup fails or differs are listed; the driver expects an empty list. */
    jb_key(&j, "get_mismatch");
    jb_open(&j, "[");
    for (k = 0; k < 4096 && g_api->environ_at(req, k, &key, &val) == CWSGI_OK; k++) {
        cwsgi_str got;
        if (g_api->environ_get(req, key.ptr, &got) != CWSGI_OK || got.len != val.len ||
            memcmp(got.ptr, val.ptr, val.len) != 0 || got.ptr[got.len] != '\0' || val.ptr[val.len] != '\0' ||
            key.ptr[key.len] != '\0') {
            jb_str(&j, key.ptr, key.len);
        }
    }
    jb_lit(&j, "]");
    jb_key(&j, "headers");
    jb_open(&j, "[");
    for (k = 0; k < 4096 && g_api->header_at(req, k, &key, &val) == CWSGI_OK; k++) {
        jb_pair(&j, key, val);
    }
    jb_lit(&j, "]");
    /* header_find must find each listed header at its position among same-named ones. */
    jb_key(&j, "find_mismatch");
    jb_open(&j, "[");
    for (k = 0; k < 4096 && g_api->header_at(req, k, &key, &val) == CWSGI_OK; k++) {
        size_t i, nth = 0;
        cwsgi_str got, kn, kv;
        for (i = 0; i < k; i++) {
            if (g_api->header_at(req, i, &kn, &kv) == CWSGI_OK && kn.len == key.len &&
                memcmp(kn.ptr, key.ptr, key.len) == 0) {
                nth++;
            }
        }
        if (g_api->header_find(req, key.ptr, nth, &got) != CWSGI_OK || got.len != val.len ||
            memcmp(got.ptr, val.ptr, val.len) != 0) {
            jb_str(&j, key.ptr, key.len);
        }
    }
    jb_lit(&j, "]");
    jb_info(&j, req);

    tx = (const cwsgi_ext_request_trailers *)g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1);
    jb_key(&j, "trailers_ext");
    jb_lit(&j, tx ? "true" : "false");
    /* EXT-1: a table with struct_size and version >= min_version, the same pointer every time;
     * a min_version above what the server has gives NULL. */
    jb_kint(&j, "ext_table_ok",
            tx == NULL || (tx->struct_size >= 8 && tx->version >= 1 &&
                           g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1) == (const void *)tx));
    jb_kint(&j, "ext_future_version_null", g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1000) == NULL);
    jb_key(&j, "trailers");
    if (tx != NULL && br.rc == 0) {
        int32_t trc = CWSGI_OK;
        jb_open(&j, "[");
        for (k = 0; k < 1024; k++) {
            trc = tx->trailer_at(req, k, &key, &val);
            if (trc != CWSGI_OK) break;
            jb_pair(&j, key, val);
        }
        jb_lit(&j, "]");
        jb_kint(&j, "trailers_rc", trc);
    } else {
        jb_lit(&j, "null");
    }
    jb_body_result(&j, &br);
    jb_key(&j, "body_b64");
    jb_b64(&j, br.keep, br.kept);
    jb_lit(&j, "}");
    free(br.keep);
    note_doc(p, rc, &j);
    if (br.rc < 0) {
        /* The body failed (limit, malformed chunk, timeout): fail before commit so that the
         * server answers for it (413, 400, 408; INPUT-READ-3). */
        free(j.p);
        return (int32_t)br.rc;
    }
    return respond_json(req, 200, &j);
}

static int32_t h_echo(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    size_t rsize = (size_t)qs_int(qs, "r", 65536);
    unsigned char *buf;
    cwsgi_header h[2];
    size_t nh = 0;
    cwsgi_str cl;
    int32_t r;
    int64_t total = 0;
    (void)p;
    if (rsize == 0 || rsize > (1u << 20)) rsize = 65536;
    h[nh++] = hdr("Content-Type", "application/octet-stream");
    if (qs_int(qs, "cl", 0) == 1 && g_api->environ_get(req, "CONTENT_LENGTH", &cl) == CWSGI_OK) {
        h[nh] = hdr("Content-Length", cl.ptr);
        nh++;
    }
    r = g_api->start_response(req, 200, NULL, h, nh, 0);
    if (r != CWSGI_OK) return r;
    buf = (unsigned char *)malloc(rsize);
    if (buf == NULL) return CWSGI_E_NOMEM;
    for (;;) {
        int64_t n = g_api->read(req, buf, rsize);
        if (n < 0) {
            note_int(p, rc, "read_rc", n);
            free(buf);
            return (int32_t)n;
        }
        if (n == 0) break;
        total += n;
        r = g_api->write(req, buf, (size_t)n);
        if (r != CWSGI_OK) {
            note_int(p, rc, "write_rc", r);
            free(buf);
            return r;
        }
    }
    free(buf);
    note_int(p, rc, "total", total);
    return CWSGI_OK;
}

static int32_t h_read(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    body_result br;
    jbuf j = {0};
    read_body(p, req, (size_t)qs_int(qs, "r", 65536), 0, &br);
    note_int(p, rc, "read_rc", br.rc);
    note_int(p, rc, "body_len", br.total);
    if (br.rc < 0 && qs_int(qs, "answer", 0) != 1) {
        return (int32_t)br.rc;
    }
    jb_open(&j, "{");
    jb_body_result(&j, &br);
    jb_lit(&j, "}");
    return respond_json(req, 200, &j);
}

static int32_t h_stream(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    int64_t n = qs_int(qs, "n", 4), m = qs_int(qs, "m", 1024);
    int64_t delay = qs_int(qs, "delay_ms", 0), pre = qs_int(qs, "pre_delay_ms", 0);
    int64_t k, off = 0;
    unsigned char *buf;
    cwsgi_header h[2];
    size_t nh = 0;
    char clbuf[32];
    int32_t r;
    int saw_shutdown = 0;
    if (m < 0 || m > (1 << 22) || n < 0) return CWSGI_E_INVAL;
    h[nh++] = hdr("Content-Type", "application/octet-stream");
    if (qs_int(qs, "cl", 0) == 1) {
        snprintf(clbuf, sizeof clbuf, "%lld", (long long)(n * m));
        h[nh++] = hdr("Content-Length", clbuf);
    }
    r = g_api->start_response(req, 200, NULL, h, nh, 0);
    if (r != CWSGI_OK) return r;
    probe_sleep(req, pre);
    buf = (unsigned char *)malloc((size_t)(m > 0 ? m : 1));
    if (buf == NULL) return CWSGI_E_NOMEM;
    for (k = 0; k < n; k++) {
        if (k > 0) probe_sleep(req, delay);
        fill_pattern(buf, (size_t)m, (uint64_t)off);
        r = g_api->write(req, buf, (size_t)m);
        if (g_api->is_shutting_down()) saw_shutdown = 1;
        if (r != CWSGI_OK) {
            note_int(p, rc, "write_rc", r);
            note_int(p, rc, "written", off);
            free(buf);
            return r;
        }
        off += m;
    }
    free(buf);
    note_int(p, rc, "written", off);
    note_int(p, rc, "saw_shutdown", saw_shutdown);
    r = g_api->finish(req);
    note_int(p, rc, "finish_rc", r);
    return r;
}

/* Returns a descriptor of a file of `size` pattern bytes. The file is created under $TMPDIR,
 * opened and unlinked at once, so nothing is left behind; the descriptor is cached. */
static int probe_file(probe_state *p, int64_t size)
{
    int k, fd = -1;
    char path[512];
    const char *dir = getenv("TMPDIR");
    unsigned char *buf;
    int64_t off;
    pthread_mutex_lock(&p->mu);
    for (k = 0; k < MAX_FILES; k++) {
        if (p->files[k].fd >= 0 && p->files[k].size == size) {
            fd = p->files[k].fd;
            pthread_mutex_unlock(&p->mu);
            return fd;
        }
    }
    snprintf(path, sizeof path, "%s/cwsgi-probe-XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    unlink(path);
    buf = (unsigned char *)malloc(65536);
    for (off = 0; buf != NULL && off < size;) {
        size_t c = (size_t)(size - off < 65536 ? size - off : 65536);
        ssize_t w;
        fill_pattern(buf, c, (uint64_t)off);
        w = write(fd, buf, c);
        if (w <= 0) break;
        off += w;
    }
    free(buf);
    if (off != size) {
        close(fd);
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    for (k = 0; k < MAX_FILES; k++) {
        if (p->files[k].fd < 0) break;
    }
    if (k == MAX_FILES) {
        k = 0;
        close(p->files[0].fd);
    }
    p->files[k].fd = fd;
    p->files[k].size = size;
    pthread_mutex_unlock(&p->mu);
    return fd;
}

static int32_t h_file(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    int64_t size = qs_int(qs, "n", 65536), offset = qs_int(qs, "offset", 0);
    int64_t count = qs_int(qs, "count", -1);
    int64_t len = count >= 0 ? count : size - offset;
    int fd = probe_file(p, size);
    cwsgi_header h[2];
    size_t nh = 0;
    char clbuf[32];
    int32_t r;
    off_t pos_before;
    if (fd < 0) return CWSGI_E_IO;
    h[nh++] = hdr("Content-Type", "application/octet-stream");
    if (qs_int(qs, "cl", 1) == 1 && len >= 0) {
        snprintf(clbuf, sizeof clbuf, "%lld", (long long)len);
        h[nh++] = hdr("Content-Length", clbuf);
    }
    r = g_api->start_response(req, 200, NULL, h, nh, 0);
    if (r != CWSGI_OK) return r;
    pos_before = lseek(fd, 0, SEEK_CUR);
    r = g_api->send_file(req, fd, offset, count);
    note_int(p, rc, "send_file_rc", r);
    /* send_file never moves the descriptor's file offset (RESP-FILE-1). */
    note_int(p, rc, "fd_offset_moved", lseek(fd, 0, SEEK_CUR) != pos_before);
    if (r != CWSGI_OK) {
        /* A range error is found before anything is sent, so the app can still answer. */
        char body[64];
        int n = snprintf(body, sizeof body, "{\"send_file_rc\":%d}", (int)r);
        cwsgi_header eh[1];
        eh[0] = hdr("Content-Type", "application/json");
        if (g_api->start_response(req, 416, NULL, eh, 1, CWSGI_RESPONSE_REPLACE) == CWSGI_OK) {
            g_api->write(req, body, (size_t)n);
            return CWSGI_OK;
        }
        return r;
    }
    return CWSGI_OK;
}

static int32_t h_status(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char vals[16][256];
    cwsgi_header h[18];
    size_t nh = 0;
    int k;
    char body[1024], clbuf[32];
    long blen = qs_get(qs, "body", 0, body, sizeof body);
    int64_t cl = qs_int(qs, "cl", -1);
    uint32_t status = (uint32_t)qs_int(qs, "s", 200);
    int32_t r;
    for (k = 0; k < 16; k++) {
        char *colon;
        if (qs_get(qs, "h", k, vals[k], sizeof vals[k]) < 0) break;
        colon = strchr(vals[k], ':');
        if (colon == NULL) continue;
        *colon = '\0';
        h[nh].name = vals[k];
        h[nh].name_len = strlen(vals[k]);
        h[nh].value = colon + 1;
        h[nh].value_len = strlen(colon + 1);
        nh++;
    }
    if (cl >= 0) {
        snprintf(clbuf, sizeof clbuf, "%lld", (long long)cl);
        h[nh++] = hdr("Content-Length", clbuf);
    }
    r = g_api->start_response(req, status, NULL, h, nh, 0);
    note_int(p, rc, "start_rc", r);
    if (r != CWSGI_OK) return r;
    probe_sleep(req, qs_int(qs, "pre_delay_ms", 0));
    if (qs_int(qs, "report_shutdown", 0) == 1) {
        /* Tells the client, in a header, whether a graceful stop had begun by the time of the
         * first write (LIFE-STOP-3); REPLACE keeps every other header. */
        h[nh++] = hdr("X-Shutting-Down", g_api->is_shutting_down() ? "1" : "0");
        r = g_api->start_response(req, status, NULL, h, nh, CWSGI_RESPONSE_REPLACE);
        note_int(p, rc, "replace_rc", r);
    }
    if (blen > 0) {
        r = g_api->write(req, body, (size_t)blen);
        note_int(p, rc, "write_rc", r);
    }
    r = g_api->finish(req);
    note_int(p, rc, "finish_rc", r);
    return CWSGI_OK;
}

static int32_t h_fail(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char when[16] = "before", clbuf[32];
    int64_t cl = qs_int(qs, "cl", -1), w = qs_int(qs, "w", 100);
    cwsgi_header h[2];
    size_t nh = 0;
    (void)p;
    (void)rc;
    qs_get(qs, "when", 0, when, sizeof when);
    if (strcmp(when, "before") == 0) {
        return CWSGI_E_APP;
    }
    if (strcmp(when, "none") == 0) {
        /* Returns success without ever starting a response: an app bug (RESP-END-2). */
        return CWSGI_OK;
    }
    h[nh++] = hdr("Content-Type", "application/octet-stream");
    if (cl >= 0) {
        snprintf(clbuf, sizeof clbuf, "%lld", (long long)cl);
        h[nh++] = hdr("Content-Length", clbuf);
    }
    if (g_api->start_response(req, 200, NULL, h, nh, 0) != CWSGI_OK) {
        return CWSGI_E_INVAL;
    }
    if (strcmp(when, "after") == 0 && w > 0) {
        unsigned char *buf = (unsigned char *)malloc((size_t)w);
        if (buf == NULL) return CWSGI_E_NOMEM;
        fill_pattern(buf, (size_t)w, 0);
        note_int(p, rc, "write_rc", g_api->write(req, buf, (size_t)w));
        free(buf);
    }
    return CWSGI_E_APP;
}

static int32_t h_length(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char mode[16] = "over";
    unsigned char buf[100];
    cwsgi_header h[1];
    int32_t r;
    qs_get(qs, "mode", 0, mode, sizeof mode);
    fill_pattern(buf, sizeof buf, 0);
    if (strcmp(mode, "over") == 0) {
        /* Content-Length 10: 6 bytes fit, the next 6 would pass it (nothing of them may be
         * sent), then the last 4 complete the body (RESP-LEN-2). */
        h[0] = hdr("Content-Length", "10");
        r = g_api->start_response(req, 200, NULL, h, 1, 0);
        if (r != CWSGI_OK) return r;
        note_int(p, rc, "w1", g_api->write(req, buf, 6));
        note_int(p, rc, "w2", g_api->write(req, buf + 6, 6));
        note_int(p, rc, "w3", g_api->write(req, buf + 6, 4));
        note_int(p, rc, "fin", g_api->finish(req));
        return CWSGI_OK;
    }
    /* Underrun: Content-Length 100, only 10 bytes, then finish (RESP-LEN-3). */
    h[0] = hdr("Content-Length", "100");
    r = g_api->start_response(req, 200, NULL, h, 1, 0);
    if (r != CWSGI_OK) return r;
    note_int(p, rc, "w1", g_api->write(req, buf, 10));
    if (qs_int(qs, "implicit", 0) == 1) {
        return CWSGI_OK;
    }
    note_int(p, rc, "fin", g_api->finish(req));
    return CWSGI_OK;
}

/* The state machine's misuse paths, reported as JSON codes (RESP-START-*, RESP-HDR-*,
 * RESP-STATE-*). The driver holds the expected code of each. */
static int32_t h_misuse(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    jbuf j = {0};
    cwsgi_header h[2];
    cwsgi_str s;
    cwsgi_request_info small_info;
    static const char *const forbidden[] = {"Connection", "keep-alive", "Proxy-Connection", "Transfer-Encoding",
                                            "TE",         "Trailer",    "upgrade",          "Status"};
    size_t k;
    int32_t r;
    (void)qs;

#define TRY(name, expr)            \
    do {                           \
        jb_kint(&j, name, (expr)); \
    } while (0)

    jb_open(&j, "{");
    jb_key(&j, "pre");
    jb_open(&j, "{");
    TRY("write_before_start", g_api->write(req, "x", 1));
    TRY("finish_before_start", g_api->finish(req));
    TRY("send_file_before_start", g_api->send_file(req, 0, 0, 1));
    TRY("status_99", g_api->start_response(req, 99, NULL, NULL, 0, 0));
    TRY("status_100", g_api->start_response(req, 100, NULL, NULL, 0, 0));
    TRY("status_103", g_api->start_response(req, 103, NULL, NULL, 0, 0));
    TRY("status_600", g_api->start_response(req, 600, NULL, NULL, 0, 0));
    TRY("status_1000", g_api->start_response(req, 1000, NULL, NULL, 0, 0));
    h[0] = hdr("Bad Name", "v");
    TRY("name_space", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("X:Y", "v");
    TRY("name_colon", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("", "v");
    TRY("name_empty", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("X-A", "a\rb");
    TRY("value_cr", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("X-A", "a\nb");
    TRY("value_lf", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("X-A", "a");
    h[0].value = "a\0b";
    h[0].value_len = 3;
    TRY("value_nul", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("X-Ok", "fine");
    h[1] = hdr("X-Bad", "line\r\nInjected: 1");
    TRY("second_header_bad", g_api->start_response(req, 200, NULL, h, 2, 0));
    TRY("reason_crlf", g_api->start_response(req, 200, "OK\r\nInjected: 1", NULL, 0, 0));
    TRY("unknown_flag", g_api->start_response(req, 200, NULL, NULL, 0, 0x80));
    TRY("null_headers", g_api->start_response(req, 200, NULL, NULL, 2, 0));
    h[0] = hdr("Content-Length", "abc");
    TRY("cl_not_digits", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("Content-Length", "+5");
    TRY("cl_sign", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("Content-Length", "1234567890123456789");
    TRY("cl_19_digits", g_api->start_response(req, 200, NULL, h, 1, 0));
    h[0] = hdr("Content-Length", "5");
    h[1] = hdr("content-length", "6");
    TRY("cl_conflict", g_api->start_response(req, 200, NULL, h, 2, 0));
    h[0] = hdr("Content-Length", "0");
    TRY("status_204_cl", g_api->start_response(req, 204, NULL, h, 1, 0));
    TRY("write_null_before_start", g_api->write(req, NULL, 5));
    TRY("read_null", (int32_t)g_api->read(req, NULL, 10));
    {
        char one[1];
        TRY("read_cap0", (int32_t)g_api->read(req, one, 0));
    }
    TRY("null_handle_environ", g_api->environ_get(NULL, "PATH_INFO", &s));
    TRY("null_handle_is_disconnected", g_api->is_disconnected(NULL));
    TRY("null_handle_alloc_null", g_api->alloc(NULL, 8) == NULL ? 1 : 0);
    TRY("null_handle_user_data_null", g_api->get_user_data(NULL) == NULL ? 1 : 0);
    TRY("info_status_100", g_api->send_informational(req, 100, NULL, 0));
    for (k = 0; k < sizeof forbidden / sizeof forbidden[0]; k++) {
        char key[64];
        h[0] = hdr(forbidden[k], "x");
        snprintf(key, sizeof key, "forbidden_%s", forbidden[k]);
        TRY(key, g_api->start_response(req, 200, NULL, h, 1, 0));
    }
    TRY("info_status_101", g_api->send_informational(req, 101, NULL, 0));
    TRY("info_status_200", g_api->send_informational(req, 200, NULL, 0));
    h[0] = hdr("X-Probe", "first");
    TRY("first_start", g_api->start_response(req, 201, NULL, h, 1, 0));
    TRY("second_start_no_replace", g_api->start_response(req, 202, NULL, NULL, 0, 0));
    TRY("info_after_start", g_api->send_informational(req, 103, NULL, 0));
    h[0] = hdr("Content-Type", "application/json");
    h[1] = hdr("X-Probe", "second");
    TRY("replace_start", g_api->start_response(req, 200, NULL, h, 2, CWSGI_RESPONSE_REPLACE));
    /* send_file argument errors send nothing and leave the response uncommitted (RESP-FILE-3). */
    {
        int fd = probe_file(p, 100);
        TRY("send_file_bad_fd", g_api->send_file(req, -1, 0, 1));
        TRY("send_file_neg_offset", g_api->send_file(req, fd, -1, 1));
        TRY("send_file_count_below", g_api->send_file(req, fd, 0, -2));
        TRY("send_file_past_end", g_api->send_file(req, fd, 50, 100));
    }
    /* API calls that need no state. */
    TRY("environ_get_missing", g_api->environ_get(req, "NO_SUCH_KEY_X", &s));
    TRY("environ_get_null_key", g_api->environ_get(req, NULL, &s));
    TRY("environ_at_past_end", g_api->environ_at(req, 100000, &s, &s));
    TRY("header_at_past_end", g_api->header_at(req, 100000, &s, &s));
    TRY("header_find_missing", g_api->header_find(req, "x-no-such-header", 0, &s));
    memset(&small_info, 0, sizeof small_info);
    small_info.struct_size = 4;
    TRY("request_info_small", g_api->request_info(req, &small_info));
    TRY("extension_unknown_null", g_api->get_extension("cwsgi.no_such_extension", 1) == NULL ? 1 : 0);
    TRY("alloc_ok", g_api->alloc(req, 100) != NULL ? 1 : 0);
    {
        /* Arena memory is aligned for any type, and size 0 still gives a pointer (MEM-ARENA-1). */
        int aligned = 1;
        size_t sz;
        for (sz = 1; sz < 200; sz += 7) {
            void *m = g_api->alloc(req, sz);
            if (m == NULL || (uintptr_t)m % _Alignof(max_align_t) != 0) aligned = 0;
        }
        TRY("alloc_aligned", aligned);
        TRY("alloc_zero_nonnull", g_api->alloc(req, 0) != NULL ? 1 : 0);
        TRY("alloc_huge_null", g_api->alloc(req, SIZE_MAX) == NULL ? 1 : 0);
    }
    TRY("user_data_was_null", rc->user_data_was_null);
    TRY("user_data_roundtrip", g_api->get_user_data(req) == (void *)rc ? 1 : 0);
    TRY("log_ok", g_api->log(req, CWSGI_LOG_DEBUG, "probe: misuse check", 19));
    jb_lit(&j, "}");

    /* Commit with the first body bytes, then check what commit forbids. */
    r = g_api->write(req, j.p, j.len);
    if (r != CWSGI_OK) {
        free(j.p);
        return r;
    }
    j.len = 0; /* the bytes are sent; continue the document */
    jb_lit(&j, ",\"post\":{");
    TRY("replace_after_commit", g_api->start_response(req, 500, NULL, NULL, 0, CWSGI_RESPONSE_REPLACE));
    TRY("start_after_commit", g_api->start_response(req, 500, NULL, NULL, 0, 0));
    TRY("info_after_commit", g_api->send_informational(req, 103, NULL, 0));
    TRY("zero_write", g_api->write(req, "", 0));
    TRY("write_null", g_api->write(req, NULL, 5));
    jb_lit(&j, "}}");
    r = g_api->write(req, j.p, j.len);
    free(j.p);
    if (r != CWSGI_OK) return r;
    r = g_api->finish(req);
    note_int(p, rc, "finish", r);
    note_int(p, rc, "write_after_finish", g_api->write(req, "x", 1));
    note_int(p, rc, "finish_after_finish", g_api->finish(req));
    note_int(p, rc, "start_after_finish", g_api->start_response(req, 200, NULL, NULL, 0, CWSGI_RESPONSE_REPLACE));
    note_int(p, rc, "send_file_after_finish", g_api->send_file(req, 0, 0, 1));
    note_int(p, rc, "environ_after_finish", g_api->environ_get(req, "REQUEST_METHOD", &s));
    {
        char one[1];
        note_int(p, rc, "read_after_finish", g_api->read(req, one, 1));
    }
    note_int(p, rc, "info_after_finish", g_api->send_informational(req, 103, NULL, 0));
#undef TRY
    return CWSGI_OK;
}

static int32_t h_info(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    uint32_t code = (uint32_t)qs_int(qs, "code", 103);
    cwsgi_header h[1];
    int32_t r;
    char body[64];
    int n;
    h[0] = hdr("Link", "</style.css>; rel=preload; as=style");
    r = g_api->send_informational(req, code, h, 1);
    note_int(p, rc, "info_rc", r);
    n = snprintf(body, sizeof body, "{\"info_rc\":%d}", (int)r);
    return respond(req, 200, "application/json", body, (size_t)n);
}

typedef struct poll_job {
    cwsgi_request *req;
    int saw;
    int polls;
    int done_fd; /* written to when the job ends (-1: none) */
} poll_job;

/* Polls is_disconnected every 10 ms for up to 10 s. */
static void *poll_disconnect(void *arg)
{
    poll_job *job = (poll_job *)arg;
    for (job->polls = 0; job->polls < 1000; job->polls++) {
        if (g_api->is_disconnected(job->req) == 1) {
            job->saw = 1;
            break;
        }
        sleep_ms(10); /* a thread of the app's own: it sleeps as threads do */
    }
    if (job->done_fd >= 0) {
        char one = 1;
        (void)!write(job->done_fd, &one, 1);
    }
    return NULL;
}

/* The disconnect watcher: mode=write streams until a write fails or is_disconnected says so;
 * mode=poll commits one chunk and then only polls is_disconnected (LIFE-DISC-1). */
static int32_t h_disconnect(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char mode[16] = "write";
    unsigned char buf[16384];
    int k, saw = 0;
    int32_t r;
    cwsgi_header h[1];
    qs_get(qs, "mode", 0, mode, sizeof mode);
    h[0] = hdr("Content-Type", "application/octet-stream");
    r = g_api->start_response(req, 200, NULL, h, 1, 0);
    if (r != CWSGI_OK) return r;
    fill_pattern(buf, sizeof buf, 0);
    if (strcmp(mode, "poll") == 0) {
        /* is_disconnected may be called from any thread (THR-2): a helper thread polls while
         * this one waits, as an app computing on worker threads would. */
        poll_job job;
        pthread_t th;
        int done[2] = {-1, -1};
        job.req = req;
        job.saw = 0;
        job.polls = 0;
        job.done_fd = -1;
        r = g_api->write(req, buf, 16);
        note_int(p, rc, "first_write_rc", r);
        /* The handle waits for its helper through the server (wait_fd on a pipe), so that it
         * keeps the cooperative promise; pthread_join then returns at once. */
        if (CWSGI_API_HAS(g_api, wait_fd) && pipe(done) == 0) job.done_fd = done[1];
        if (pthread_create(&th, NULL, poll_disconnect, &job) != 0) {
            poll_disconnect(&job);
        } else {
            if (job.done_fd >= 0) {
                while (g_api->wait_fd(req, done[0], CWSGI_WAIT_READ, -1) == CWSGI_E_TIMEOUT) {
                }
            }
            pthread_join(th, NULL);
        }
        if (done[0] >= 0) {
            close(done[0]);
            close(done[1]);
        }
        note_int(p, rc, "saw_disc", job.saw);
        note_int(p, rc, "polls", job.polls);
        return CWSGI_OK;
    }
    for (k = 0; k < 3000; k++) { /* at most 30 s */
        if (g_api->is_disconnected(req) == 1) {
            saw = 1;
            break;
        }
        r = g_api->write(req, buf, sizeof buf);
        if (r != CWSGI_OK) {
            note_int(p, rc, "write_rc", r);
            /* Once the client is gone, every later write fails the same way. */
            note_int(p, rc, "write_rc2", g_api->write(req, buf, 1));
            /* After a failed write the server knows, with or without CWSGI_CAP_DISCONNECT. */
            note_int(p, rc, "disc_after_fail", g_api->is_disconnected(req));
            break;
        }
        probe_sleep(req, 10);
    }
    note_int(p, rc, "saw_disc", saw);
    note_int(p, rc, "iterations", k);
    return saw ? CWSGI_E_DISCONNECTED : CWSGI_OK;
}

static int32_t h_expect(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char mode[16] = "read";
    qs_get(qs, "mode", 0, mode, sizeof mode);
    probe_sleep(req, qs_int(qs, "delay_ms", 0));
    if (strcmp(mode, "417") == 0) {
        return respond(req, 417, "text/plain", "refused\n", 8);
    }
    if (strcmp(mode, "200") == 0) {
        return respond(req, 200, "text/plain", "not read\n", 9);
    }
    return h_read(p, rc, req, qs);
}

/* Writes ?msg= to the error log at WARNING with the request handle (LOG-ERR-1/2). */
static int32_t h_log(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    char msg[512], body[64];
    long n = qs_get(qs, "msg", 0, msg, sizeof msg);
    int32_t r;
    int bn;
    (void)p;
    (void)rc;
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    r = g_api->log(req, CWSGI_LOG_WARNING, msg, (size_t)n);
    bn = snprintf(body, sizeof body, "{\"log_rc\":%d,\"bad_level_rc\":%d,\"null_msg_rc\":%d}", (int)r,
                  (int)g_api->log(req, 5, "x", 1), (int)g_api->log(req, CWSGI_LOG_WARNING, NULL, 3));
    return respond(req, 200, "application/json", body, (size_t)bn);
}

static int32_t h_sleep(probe_state *p, rctx *rc, cwsgi_request *req, cwsgi_str qs)
{
    (void)p;
    (void)rc;
    probe_sleep(req, qs_int(qs, "ms", 100));
    return respond(req, 200, "text/plain", "slept\n", 6);
}

static int32_t h_caps(probe_state *p, cwsgi_request *req)
{
    jbuf j = {0};
    cwsgi_server_info si;
    char hex[32];
    (void)p;
    memset(&si, 0, sizeof si);
    si.struct_size = sizeof si;
    snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)g_api->capabilities);
    jb_open(&j, "{");
    jb_kstr(&j, "caps", hex, strlen(hex));
    jb_kint(&j, "abi_major", g_api->abi_major);
    jb_kint(&j, "abi_minor", g_api->abi_minor);
    jb_kint(&j, "api_struct_size", g_api->struct_size);
    jb_kint(&j, "server_info_rc", g_api->server_info(&si));
    jb_kint(&j, "pid", (int64_t)getpid());
    jb_kint(&j, "worker_id", si.worker_id);
    jb_kint(&j, "workers", si.workers);
    jb_kint(&j, "threads", si.threads);
    jb_kint(&j, "limit_request_body", si.limit_request_body);
    jb_kint(&j, "limit_request_line", si.limit_request_line);
    jb_kint(&j, "limit_request_fields", si.limit_request_fields);
    jb_kint(&j, "limit_request_field_size", si.limit_request_field_size);
    jb_kint(&j, "graceful_timeout_ms", si.graceful_timeout_ms);
    jb_kstr(&j, "adapter", si.adapter.ptr, si.adapter.len);
    jb_kstr(&j, "server_software", si.server_software.ptr, si.server_software.len);
    jb_kint(&j, "trailers_ext", g_api->get_extension(CWSGI_EXT_REQUEST_TRAILERS, 1) != NULL);
    jb_kint(&j, "is_shutting_down", g_api->is_shutting_down());
    jb_lit(&j, "}");
    return respond_json(req, 200, &j);
}

/* The bookkeeping as JSON. "shared" says whether the counts are those of every process of the
 * server ($CWSGI_PROBE_SHARED) or of this one. "handled", "ends", "read_errors",
 * "handled_before_worker_start", "outcomes" and "tag" are of the whole server (all processes
 * with a shared file); "pid", "info_worker_id" (server_info now), "inits", "worker_starts",
 * "worker_stops" and "last_worker_id" are of the process that answers; "processes" lists the
 * record of every process that ran worker_start (its own counts). */
static int32_t h_stats(probe_state *p, cwsgi_request *req, cwsgi_str qs)
{
    probe_shared *sh = p->sh;
    jbuf j = {0};
    char tag[TAG_LEN];
    int slot = -1, k;
    long tl = qs_get(qs, "tag", 0, tag, sizeof tag);
    cwsgi_server_info si;
    memset(&si, 0, sizeof si);
    si.struct_size = sizeof si;
    (void)g_api->server_info(&si);
    sh_lock(p);
    jb_open(&j, "{");
    jb_kint(&j, "shared", p->sh_len > 0);
    jb_kint(&j, "pid", (int64_t)getpid());
    jb_kint(&j, "info_worker_id", si.worker_id);
    jb_kint(&j, "inits", (int64_t)p->inits);
    jb_kint(&j, "worker_starts", (int64_t)p->worker_starts);
    jb_kint(&j, "worker_stops", (int64_t)p->worker_stops);
    jb_kint(&j, "last_worker_id", p->last_worker_id);
    jb_kint(&j, "handled", (int64_t)sh->handled);
    jb_kint(&j, "ends", (int64_t)sh->ends);
    jb_kint(&j, "read_errors", (int64_t)sh->read_errors);
    jb_kint(&j, "handled_before_worker_start", (int64_t)sh->handled_before_worker_start);
    jb_key(&j, "outcomes");
    jb_open(&j, "{");
    jb_kint(&j, "ok", (int64_t)sh->outcome_ok);
    jb_kint(&j, "disconnected", (int64_t)sh->outcome_disc);
    jb_kint(&j, "aborted", (int64_t)sh->outcome_aborted);
    jb_kint(&j, "app", (int64_t)sh->outcome_app);
    jb_kint(&j, "other", (int64_t)sh->outcome_other);
    jb_lit(&j, "}");
    jb_key(&j, "processes");
    jb_open(&j, "[");
    for (k = 0; k < MAX_PROCS; k++) {
        const proc_rec *r = &sh->procs[k];
        if (r->pid == 0) continue;
        jb_open(&j, "{");
        jb_kint(&j, "pid", r->pid);
        jb_kint(&j, "worker_id", r->worker_id);
        jb_kint(&j, "inits", (int64_t)r->inits);
        jb_kint(&j, "worker_starts", (int64_t)r->worker_starts);
        jb_kint(&j, "worker_stops", (int64_t)r->worker_stops);
        jb_kint(&j, "handled", (int64_t)r->handled);
        jb_kint(&j, "ends", (int64_t)r->ends);
        jb_lit(&j, "}");
    }
    jb_lit(&j, "]");
    if (tl > 0) {
        slot = tag_slot_locked(p, tag, 0);
        jb_key(&j, "tag");
        if (slot < 0) {
            jb_lit(&j, "null");
        } else {
            tag_rec *t = &sh->tags[slot];
            jb_open(&j, "{");
            jb_kint(&j, "ends", t->ends);
            jb_key(&j, "outcome");
            if (t->outcome == INT32_MIN) {
                jb_lit(&j, "null");
            } else {
                jb_int(&j, t->outcome);
            }
            jb_key(&j, "notes");
            jb_lit(&j, "{");
            jb_raw(&j, t->notes, t->notes_len);
            jb_lit(&j, "}");
            jb_key(&j, "doc");
            jb_lit(&j, t->doc >= 0 ? sh->docs[t->doc].text : "null");
            jb_lit(&j, "}");
        }
    }
    jb_lit(&j, "}");
    sh_unlock(p);
    return respond_json(req, 200, &j);
}

/* ---------------------------------------------------------------------------------------- */
/* The app's callbacks                                                                       */
/* ---------------------------------------------------------------------------------------- */

static int32_t probe_init(const cwsgi_server_api *api, void **state, char *errbuf, size_t errlen)
{
    probe_state *p;
    const char *shared = getenv(SHARED_ENV);
    int k;
    if (api == NULL || !CWSGI_API_HAS(api, get_extension)) {
        snprintf(errbuf, errlen, "probe needs a CWSGI 1.0 server table");
        return CWSGI_E_ABI;
    }
    p = (probe_state *)calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return CWSGI_E_NOMEM;
    }
    if (shared != NULL && *shared != '\0') {
        p->sh = shared_map(shared, errbuf, errlen);
        p->sh_len = sizeof *p->sh;
        if (p->sh == NULL) {
            free(p);
            return CWSGI_E_IO;
        }
    } else {
        p->sh = (probe_shared *)calloc(1, sizeof *p->sh);
        if (p->sh == NULL || shared_setup(p->sh) != 0) {
            free(p->sh);
            free(p);
            snprintf(errbuf, errlen, "out of memory");
            return CWSGI_E_NOMEM;
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    for (k = 0; k < MAX_FILES; k++) {
        p->files[k].fd = -1;
    }
    p->inits = 1;
    g_api = api;
    *state = p;
    return CWSGI_OK;
}

static int32_t probe_worker_start(void *state, uint32_t worker_id, char *errbuf, size_t errlen)
{
    probe_state *p = (probe_state *)state;
    char msg[64];
    int n;
    (void)errbuf;
    (void)errlen;
    sh_lock(p);
    p->worker_starts++;
    p->last_worker_id = worker_id;
    if (p->me == NULL) p->me = proc_claim_locked(p);
    proc_publish_locked(p);
    sh_unlock(p);
    n = snprintf(msg, sizeof msg, "probe: worker_start %u", (unsigned)worker_id);
    g_api->log(NULL, CWSGI_LOG_INFO, msg, (size_t)n);
    return CWSGI_OK;
}

static void probe_worker_stop(void *state, uint32_t worker_id)
{
    probe_state *p = (probe_state *)state;
    char msg[80];
    uint64_t handled, ends;
    int n;
    sh_lock(p);
    p->worker_stops++;
    proc_publish_locked(p);
    handled = p->handled;
    ends = p->ends;
    sh_unlock(p);
    /* The driver looks for these lines in the error log after a graceful stop, one per worker;
     * the counts are this process's own. */
    n = snprintf(msg, sizeof msg, "probe: worker_stop %u handled=%llu ends=%llu", (unsigned)worker_id,
                 (unsigned long long)handled, (unsigned long long)ends);
    g_api->log(NULL, CWSGI_LOG_WARNING, msg, (size_t)n);
}

static void probe_destroy(void *state)
{
    probe_state *p = (probe_state *)state;
    int k;
    g_api->log(NULL, CWSGI_LOG_WARNING, "probe: destroy", 14);
    for (k = 0; k < MAX_FILES; k++) {
        if (p->files[k].fd >= 0) close(p->files[k].fd);
    }
    pthread_mutex_destroy(&p->mu);
    if (p->sh_len > 0) {
        munmap(p->sh, p->sh_len); /* the file and its counts stay for the other workers */
    } else {
        pthread_mutex_destroy(&p->sh->mu);
        free(p->sh);
    }
    free(p);
}

static int32_t probe_handle(void *state, cwsgi_request *req)
{
    probe_state *p = (probe_state *)state;
    cwsgi_str path, qs;
    rctx *rc = (rctx *)g_api->alloc(req, sizeof *rc);
    char name[32], tag[TAG_LEN];
    size_t k;
    if (rc == NULL) return CWSGI_E_NOMEM;
    rc->slot = -1;
    rc->bookkeeping = 0;
    rc->user_data_was_null = g_api->get_user_data(req) == NULL;
    if (g_api->environ_get(req, "PATH_INFO", &path) != CWSGI_OK) {
        path.ptr = "";
        path.len = 0;
    }
    if (g_api->environ_get(req, "QUERY_STRING", &qs) != CWSGI_OK) {
        qs.ptr = "";
        qs.len = 0;
    }
    name[0] = '\0';
    if (path.len > 3 && memcmp(path.ptr, "/t/", 3) == 0) {
        for (k = 0; k + 3 < path.len && path.ptr[k + 3] != '/' && k + 1 < sizeof name; k++) {
            name[k] = path.ptr[k + 3];
        }
        name[k] = '\0';
    }
    rc->bookkeeping = strcmp(name, "stats") == 0 || strcmp(name, "caps") == 0;
    g_api->set_user_data(req, rc);
    if (rc->bookkeeping) {
        return strcmp(name, "stats") == 0 ? h_stats(p, req, qs) : h_caps(p, req);
    }

    sh_lock(p);
    p->sh->handled++;
    p->handled++;
    if (p->worker_starts == 0) p->sh->handled_before_worker_start++;
    proc_publish_locked(p);
    if (qs_get(qs, "tag", 0, tag, sizeof tag) > 0) {
        rc->slot = tag_slot_locked(p, tag, 1);
    }
    sh_unlock(p);

    if (strcmp(name, "echo") == 0) return h_echo(p, rc, req, qs);
    if (strcmp(name, "read") == 0) return h_read(p, rc, req, qs);
    if (strcmp(name, "stream") == 0) return h_stream(p, rc, req, qs);
    if (strcmp(name, "file") == 0) return h_file(p, rc, req, qs);
    if (strcmp(name, "status") == 0) return h_status(p, rc, req, qs);
    if (strcmp(name, "fail") == 0) return h_fail(p, rc, req, qs);
    if (strcmp(name, "length") == 0) return h_length(p, rc, req, qs);
    if (strcmp(name, "misuse") == 0) return h_misuse(p, rc, req, qs);
    if (strcmp(name, "info") == 0) return h_info(p, rc, req, qs);
    if (strcmp(name, "disconnect") == 0) return h_disconnect(p, rc, req, qs);
    if (strcmp(name, "expect") == 0) return h_expect(p, rc, req, qs);
    if (strcmp(name, "sleep") == 0) return h_sleep(p, rc, req, qs);
    if (strcmp(name, "log") == 0) return h_log(p, rc, req, qs);
    /* /t/env and every other path: the environ report. */
    return h_env(p, rc, req, qs);
}

static void probe_on_request_end(void *state, cwsgi_request *req, int32_t outcome)
{
    probe_state *p = (probe_state *)state;
    rctx *rc = (rctx *)g_api->get_user_data(req);
    if (rc != NULL && rc->slot >= 0) {
        /* Inside on_request_end the request is readable and nothing can be sent (LIFE-END-3). */
        cwsgi_str s;
        note_int(p, rc, "end_environ", g_api->environ_get(req, "REQUEST_METHOD", &s));
        note_int(p, rc, "end_write", g_api->write(req, "x", 1));
        note_int(p, rc, "end_finish", g_api->finish(req));
    }
    sh_lock(p);
    if (rc == NULL || !rc->bookkeeping) {
        probe_shared *sh = p->sh;
        sh->ends++;
        p->ends++;
        proc_publish_locked(p);
        switch (outcome) {
        case CWSGI_OK: sh->outcome_ok++; break;
        case CWSGI_E_DISCONNECTED: sh->outcome_disc++; break;
        case CWSGI_E_ABORTED: sh->outcome_aborted++; break;
        case CWSGI_E_APP: sh->outcome_app++; break;
        default: sh->outcome_other++; break;
        }
    }
    if (rc != NULL && rc->slot >= 0) {
        p->sh->tags[rc->slot].ends++;
        p->sh->tags[rc->slot].outcome = outcome;
    }
    sh_unlock(p);
}

static const cwsgi_app_desc probe_desc = {
    sizeof(cwsgi_app_desc),
    CWSGI_ABI_MAJOR,
    0,
    "conformance-probe",
    CWSGI_VERSION_STRING,
    CWSGI_THREADS_SAFE,
    0,
    0,
    NULL,
    probe_init,
    probe_worker_start,
    probe_worker_stop,
    probe_destroy,
    probe_handle,
    probe_on_request_end,
    0,
    0,
};

CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    if (desc_out == NULL) return CWSGI_E_INVAL;
    *desc_out = &probe_desc;
    return CWSGI_OK;
}
