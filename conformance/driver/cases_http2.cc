// cases_http2.cc: HTTP/2 cases, run through libcurl (h2c with prior knowledge, or with --tls h2
// negotiated by ALPN over https) when the server declares CWSGI_CAP_HTTP2. Without the capability each case is skipped
// with that reason, so the list of what an HTTP/2 server must pass is visible in every run.
#include "suite.hh"

#ifdef CWSGI_CONFORMANCE_HAVE_CURL
#include <curl/curl.h>
#endif

namespace conf {
namespace {

struct H2Response {
    long status = 0;
    std::string body;
    std::vector<Field> headers;
    int curl_code = 0;
    std::string error;
};

#ifdef CWSGI_CONFORMANCE_HAVE_CURL
size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    static_cast<H2Response *>(ud)->body.append(p, size * n);
    return size * n;
}

size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    std::string line(p, size * n);
    auto *r = static_cast<H2Response *>(ud);
    size_t c = line.find(':');
    if (c != std::string::npos && line[0] != ':') {
        std::string v = line.substr(c + 1);
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        r->headers.push_back({line.substr(0, c), v});
    }
    return size * n;
}
#endif

H2Response h2(Ctx &ctx, const std::string &method, const std::string &target, const std::string &body = "")
{
    H2Response r;
#ifdef CWSGI_CONFORMANCE_HAVE_CURL
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2))
        skip("this libcurl has no HTTP/2 support");
    CURL *c = curl_easy_init();
    if (!c) fail("curl_easy_init failed");
    std::string url = ctx.scheme() + "://" + ctx.t.host + ":" + std::to_string(ctx.t.port) + target;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    if (ctx.opt().tls) {
        // h2 by ALPN; the certificate checked against --tls-ca (or the throwaway one), or not at all.
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        if (ctx.opt().tls_ca.empty()) {
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        } else {
            curl_easy_setopt(c, CURLOPT_CAINFO, ctx.opt().tls_ca.c_str());
        }
    } else {
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (!body.empty()) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    CURLcode rc = curl_easy_perform(c);
    r.curl_code = rc;
    r.error = errbuf;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    long version = 0;
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &version);
    curl_easy_cleanup(c);
    // Over TLS curl falls back to HTTP/1.1 when ALPN does not pick h2: that is no HTTP/2 case.
    if (rc == CURLE_OK && version != CURL_HTTP_VERSION_2_0)
        fail("the response did not come over HTTP/2 (ALPN did not select h2?)");
#else
    (void)ctx;
    (void)method;
    (void)target;
    (void)body;
    skip("cwsgi-conformance was built without libcurl (HTTP/2 cases need it)");
#endif
    return r;
}

void h2_environ(Ctx &ctx)
{
    // rule: ENV-KEYS-3, ENV-HDR-1 (":authority" as "host" at index 0), ENV-INFO-2
    H2Response r = h2(ctx, "GET", "/t/env?h2=1");
    if (r.curl_code != 0 || r.status != 200)
        fail("HTTP/2 GET /t/env: curl " + std::to_string(r.curl_code) + " " + r.error + ", status " +
             std::to_string(r.status));
    json d = json::parse(r.body);
    auto m = environ_map(d);
    check_eq(m["SERVER_PROTOCOL"], std::string("HTTP/2"), "ENV-KEYS-3: SERVER_PROTOCOL");
    check_eq(d["info"]["http_major"].get<int>(), 2, "ENV-INFO-2: http_major");
    check_eq(d["info"]["http_minor"].get<int>(), 0, "ENV-INFO-2: http_minor");
    if (d["headers"].empty() || d["headers"][0][0] != "host")
        fail("ENV-HDR-1: :authority must appear as 'host' at index 0");
    for (const auto &h : d["headers"]) {
        if (h[0].get<std::string>().rfind(":", 0) == 0) fail("ENV-HDR-1: a pseudo-header is in the header list");
    }
    check_eq(m["QUERY_STRING"], std::string("h2=1"), "ENV-PATH-3: QUERY_STRING");
    check_eq(m["cwsgi.url_scheme"], ctx.scheme(), "ENV-KEYS-6: cwsgi.url_scheme");
    check_eq(d["info"]["is_tls"].get<int>(), ctx.opt().tls ? 1 : 0, "ENV-INFO-2: is_tls");
}

void h2_framing(Ctx &ctx)
{
    // rule: RESP-FRAME-5: no connection-specific fields; content-length only with a length.
    H2Response r = h2(ctx, "GET", "/t/stream?n=3&m=100");
    if (r.curl_code != 0 || r.status != 200) fail("HTTP/2 stream: curl " + std::to_string(r.curl_code) + " " + r.error);
    for (const auto &f : r.headers) {
        for (const char *bad : {"connection", "transfer-encoding", "keep-alive", "content-length"}) {
            if (iequals(f.name, bad)) fail(std::string("RESP-FRAME-5: HTTP/2 response carries ") + bad);
        }
    }
    check_eq(r.body, pattern(0, 300), "RESP-FRAME-5: body");
}

void h2_error_after_commit(Ctx &ctx)
{
    // rule: RESP-ERR-2: HTTP/2: RST_STREAM, never a clean END_STREAM.
    H2Response r = h2(ctx, "GET", "/t/fail?when=after&w=100");
    if (r.curl_code == 0) fail("RESP-ERR-2: the stream ended cleanly after the app failed (no RST_STREAM)");
}

void h2_upload(Ctx &ctx)
{
    // rule: INPUT-READ-3: an HTTP/2 body is the DATA payloads up to END_STREAM.
    std::string body = pattern(0, 100000);
    H2Response r = h2(ctx, "POST", "/t/echo", body);
    if (r.curl_code != 0 || r.status != 200) fail("HTTP/2 upload: curl " + std::to_string(r.curl_code) + " " + r.error);
    if (r.body != body) fail("INPUT-READ-3: the echoed HTTP/2 body differs");
}

} // namespace

void add_http2_cases(std::vector<Case> &out)
{
    out.push_back({"ENV-KEYS-3", "h2-environ", profile::base, CWSGI_CAP_HTTP2, false, h2_environ});
    out.push_back({"RESP-FRAME-5", "h2-framing", profile::base, CWSGI_CAP_HTTP2, false, h2_framing});
    out.push_back({"RESP-ERR-2", "h2-error-after-commit-rst-stream", profile::base, CWSGI_CAP_HTTP2, false,
                   h2_error_after_commit});
    out.push_back({"INPUT-READ-3", "h2-upload", profile::base, CWSGI_CAP_HTTP2, false, h2_upload});
}

} // namespace conf
