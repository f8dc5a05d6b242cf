// errors.cc: the response filter that rewrites libh2o's own error answers (see errors.hh).
#include "errors.hh"

#include <cstdlib>
#include <cstring>

#include "core/context.hh"
#include "core/request.hh"
#include "head.hh"
#include "server.hh"
#include "stream.hh"

namespace cwsgi::adapters::h2o {

namespace {

struct ErrorFilter {
    h2o_filter_t super;
    core::Context *ctx;
};

/// Replaces the body libh2o produced with the core's, in the one send h2o_send_inline makes.
struct BodyOstream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool head_request;
};

void send_replaced(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *, size_t, h2o_send_state_t state)
{
    auto *o = reinterpret_cast<BodyOstream *>(self);
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        h2o_ostream_send_next(self, req, nullptr, 0, state);
        return;
    }
    h2o_ostream_send_next(self, req, o->head_request ? nullptr : &o->body, o->head_request ? 0 : 1, state);
}

char *pool_copy(h2o_req_t *req, std::string_view s)
{
    char *p = static_cast<char *>(h2o_mem_alloc_pool(&req->pool, s.size() + 1));
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    core::Context &ctx = *reinterpret_cast<ErrorFilter *>(self)->ctx;
    const int status = req->res.status;
    if (!is_adapter_generator(req->_generator) && status >= 400 && status < 600) {
        core::ErrorResponse err = core::make_error_response(static_cast<uint32_t>(status));
        const char *why = req->res.reason;
        req->res.reason = pool_copy(req, err.reason);
        req->res.content_length = SIZE_MAX;
        req->http1_is_persistent = 0;
        req->res.headers = {};
        for (const core::Header &h : err.headers) {
            if (core::iequals(h.name, "connection")) continue; // libh2o writes it from the flag
            add_response_header(req, std::string_view(pool_copy(req, h.name), h.name.size()),
                                std::string_view(pool_copy(req, h.value), h.value.size()));
        }
        auto *o = reinterpret_cast<BodyOstream *>(h2o_add_ostream(req, sizeof(BodyOstream), slot));
        o->super.do_send = &send_replaced;
        o->body = h2o_iovec_t{pool_copy(req, err.body), err.body.size()};
        o->head_request = req->input.method.len == 4 && std::memcmp(req->input.method.base, "HEAD", 4) == 0;
        slot = &o->super.next;

        // Logged as the adapter logs the heads it refuses (error log at INFO, access log).
        core::RequestHead head;
        if (req->version != 0) (void)build_head(req, Loop::from(req).addresses(), head);
        core::HeadCheck check;
        check.status = static_cast<uint32_t>(status);
        check.reason = std::string("answered by libh2o: ") + (why != nullptr ? why : "");
        check.rule = "REQ-REPLY-1";
        core::log_rejected(ctx, head, check, o->head_request ? 0 : err.body.size());
    }
    h2o_setup_next_ostream(req, slot);
}

} // namespace

void install_filters(h2o_pathconf_t *pathconf, core::Context &ctx)
{
    for (size_t i = 0; i < pathconf->filters.size; ++i) std::free(pathconf->filters.entries[i]);
    pathconf->filters.size = 0;
    auto *f = reinterpret_cast<ErrorFilter *>(h2o_create_filter(pathconf, sizeof(ErrorFilter)));
    f->super.on_setup_ostream = &on_setup_ostream;
    f->ctx = &ctx;
}

} // namespace cwsgi::adapters::h2o
