/*
 * env: answers the request's environ as JSON, in C:
 *   {"environ":{"REQUEST_METHOD":"GET",...},"headers":[["host","localhost"],...]}
 * "environ" holds every entry of environ_at in the server's order (ENV-KEYS-2); "headers" the
 * request headers as header_at gives them: arrival order, names lowercased, duplicates kept
 * (ENV-HDR-1). It shows how to walk both lists, and is a debugging aid for proxies and mounts.
 *
 * Environ values are bytes, not text (a header value may carry obs-text, a decoded PATH_INFO
 * any byte), so the JSON encoding is defined for every byte string: '"' and '\' are escaped,
 * control bytes become \b \f \n \r \t or \u00XX, well-formed UTF-8 passes through, and every
 * byte that is not part of well-formed UTF-8 becomes \u00XX, i.e. it is read as Latin-1
 * (byte 0xE9 alone becomes "\u00e9"). The output is therefore always valid JSON, and a reader
 * can tell which bytes arrived: that is the same rule as cwsgi::json_escape in cwsgi.hpp.
 * It never blocks, so it declares CWSGI_APP_COOPERATIVE (THR-5).
 */
#include <cwsgi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The server's table: set once by env_init, read-only afterwards. */
static const cwsgi_server_api *g_api;

/* Keeps the server's table. Returns CWSGI_OK. Threads: the loader's thread. */
static int32_t env_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    g_api = api;
    *app_state = NULL;
    return CWSGI_OK;
}

/* A growable byte buffer. `failed` becomes 1 on the first allocation failure and stays so. */
typedef struct env_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} env_buf;

/* Appends n bytes; on allocation failure sets b->failed and drops them. */
static void buf_append(env_buf *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->cap - b->len < n) {
        size_t cap = b->cap != 0 ? b->cap : 1024;
        while (cap - b->len < n) {
            if (cap > ((size_t)-1) / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        char *data = realloc(b->data, cap);
        if (data == NULL) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void buf_puts(env_buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/*
 * Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when the byte there does not start one.
 */
static size_t utf8_len(const unsigned char *s, size_t n, size_t i)
{
    unsigned char c = s[i];
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < len; ++k) {
        if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
            return 0;
        }
    }
    return len;
}

/* Appends `s` as a quoted JSON string, escaped as the top of this file says. */
static void buf_json_string(env_buf *b, cwsgi_str s)
{
    static const char k_hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    buf_append(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied unchanged */
    size_t i = 0;
    while (i < s.len) {
        unsigned char c = p[i];
        size_t seq = c >= 0x80 ? utf8_len(p, s.len, i) : 0;
        if (seq > 0 || (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')) {
            i += seq > 0 ? seq : 1;
            continue;
        }
        buf_append(b, s.ptr + run, i - run);
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = k_hex[c >> 4];
            esc[5] = k_hex[c & 0xF];
            esc_len = 6;
        }
        buf_append(b, esc, esc_len);
        ++i;
        run = i;
    }
    buf_append(b, s.ptr + run, s.len - run);
    buf_append(b, "\"", 1);
}

/* Builds the JSON document into b. */
static void build_json(cwsgi_request *req, env_buf *b)
{
    cwsgi_str key;
    cwsgi_str value;
    buf_puts(b, "{\"environ\":{");
    /* The lists end at CWSGI_E_NOTFOUND; the server's lists are finite, so are the loops. */
    for (size_t i = 0; g_api->environ_at(req, i, &key, &value) == CWSGI_OK; ++i) {
        if (i > 0) {
            buf_puts(b, ",");
        }
        buf_json_string(b, key);
        buf_puts(b, ":");
        buf_json_string(b, value);
    }
    buf_puts(b, "},\"headers\":[");
    for (size_t i = 0; g_api->header_at(req, i, &key, &value) == CWSGI_OK; ++i) {
        buf_puts(b, i > 0 ? ",[" : "[");
        buf_json_string(b, key);
        buf_puts(b, ",");
        buf_json_string(b, value);
        buf_puts(b, "]");
    }
    buf_puts(b, "]}\n");
}

/*
 * Answers the environ and headers as JSON with a Content-Length.
 * Returns: CWSGI_OK; CWSGI_E_NOMEM when the document does not fit in memory; or the failed
 * call's code. Threads: any request thread, concurrently (the buffer is per request).
 */
static int32_t env_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    env_buf b = {NULL, 0, 0, 0};
    build_json(req, &b);
    if (b.failed) {
        free(b.data);
        return CWSGI_E_NOMEM;
    }
    char len[24];
    int len_n = snprintf(len, sizeof len, "%zu", b.len);
    const cwsgi_header headers[] = {
        {"Content-Type", 12, "application/json", 16},
        {"Content-Length", 14, len, (size_t)len_n},
    };
    int32_t rc = g_api->start_response(req, 200, NULL, headers, 2, 0);
    if (rc == CWSGI_OK) {
        rc = g_api->write(req, b.data, b.len);
    }
    free(b.data);
    return rc;
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* flags need 1.1 (ABI-STRUCT-5) */
    .name = "env",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = env_init,
    .handle = env_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
