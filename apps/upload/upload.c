/*
 * upload: hashes a request body of any size in bounded memory, in C, and answers
 * {"bytes":N,"sha256":"<64 hex digits>"} as JSON. It shows the input stream as a pipeline:
 * each 64 KiB piece read (INPUT-READ-1) goes into an incremental SHA-256 (OpenSSL's EVP
 * digest API) and is dropped, so a multi-gigabyte upload costs the same memory as a small one.
 * Bodies of unknown length (chunked, HTTP/2) end at read() == 0 like any other (INPUT-READ-2).
 * A read error is returned as is before anything was sent, so the server answers it itself
 * (413 for a body over --limit-request-body, per the spec's body-limit rule).
 * It blocks only inside read, so it declares CWSGI_APP_COOPERATIVE (THR-5).
 */
#include <cwsgi.h>

#include <openssl/evp.h>
#include <stdio.h>

#define UPLOAD_PIECE ((size_t)64 * 1024)

/* The server's table: set once by upload_init, read-only afterwards. */
static const cwsgi_server_api *g_api;

/* Keeps the server's table. Returns CWSGI_OK. Threads: the loader's thread. */
static int32_t upload_init(const cwsgi_server_api *api, void **app_state, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    g_api = api;
    *app_state = NULL;
    return CWSGI_OK;
}

/*
 * Reads the whole body into the digest `ctx`, counting bytes in *total.
 * Returns CWSGI_OK at the end of the body, CWSGI_E_NOMEM, CWSGI_E_APP when the digest fails,
 * or the negative code read() returned.
 */
static int32_t hash_body(cwsgi_request *req, EVP_MD_CTX *ctx, uint64_t *total)
{
    unsigned char *piece = g_api->alloc(req, UPLOAD_PIECE);
    if (piece == NULL) {
        return CWSGI_E_NOMEM;
    }
    for (;;) {
        int64_t got = g_api->read(req, piece, UPLOAD_PIECE);
        if (got < 0) {
            return (int32_t)got;
        }
        if (got == 0) {
            return CWSGI_OK;
        }
        if (EVP_DigestUpdate(ctx, piece, (size_t)got) != 1) {
            return CWSGI_E_APP;
        }
        *total += (uint64_t)got;
    }
}

/*
 * Hashes the body and answers the JSON summary with a Content-Length.
 * Returns: CWSGI_OK, or the failing call's code (the server then answers 500, or 413 for
 * CWSGI_E_BODY over the limit). Threads: any request thread, concurrently: each request has
 * its own digest context.
 */
static int32_t upload_handle(void *app_state, cwsgi_request *req)
{
    (void)app_state;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return CWSGI_E_NOMEM;
    }
    uint64_t total = 0;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int32_t rc = CWSGI_E_APP;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        rc = hash_body(req, ctx, &total);
        if (rc == CWSGI_OK && EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1) {
            rc = CWSGI_E_APP;
        }
    }
    EVP_MD_CTX_free(ctx);
    if (rc != CWSGI_OK) {
        return rc;
    }

    static const char k_hex[] = "0123456789abcdef";
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < digest_len; ++i) {
        hex[2 * i] = k_hex[digest[i] >> 4];
        hex[2 * i + 1] = k_hex[digest[i] & 0xF];
    }
    hex[2 * digest_len] = '\0';
    char body[160];
    int body_n = snprintf(body, sizeof body, "{\"bytes\":%llu,\"sha256\":\"%s\"}\n", (unsigned long long)total, hex);
    char len[24];
    int len_n = snprintf(len, sizeof len, "%d", body_n);
    const cwsgi_header headers[] = {
        {"Content-Type", 12, "application/json", 16},
        {"Content-Length", 14, len, (size_t)len_n},
    };
    rc = g_api->start_response(req, 200, NULL, headers, 2, 0);
    return rc != CWSGI_OK ? rc : g_api->write(req, body, (size_t)body_n);
}

static const cwsgi_app_desc k_desc = {
    .struct_size = sizeof(cwsgi_app_desc),
    .abi_major = CWSGI_ABI_MAJOR,
    .abi_minor = 1, /* flags need 1.1 (ABI-STRUCT-5) */
    .name = "upload",
    .version = CWSGI_VERSION_STRING,
    .thread_safety = CWSGI_THREADS_SAFE,
    .init = upload_init,
    .handle = upload_handle,
    .flags = CWSGI_APP_COOPERATIVE,
};

/* The entry symbol (ABI-LOAD-1): hands back the descriptor, nothing else. */
CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out)
{
    (void)api;
    *desc_out = &k_desc;
    return CWSGI_OK;
}
