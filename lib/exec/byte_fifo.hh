// byte_fifo.hh: a bounded first-in first-out byte buffer, the per-request pipe between the code
// running handle() and the adapter's event loop (request body one way, response body the other).
//
// The buffer never holds more than its capacity, so a request's memory stays bounded whatever
// the size of its body (the 1 GiB upload and download cases). Storage grows on demand up to the
// capacity, so a 14-byte response costs 14 bytes, and consumed bytes are reclaimed by moving
// the unread tail to the front only when an append would not fit otherwise.
// Not thread-safe: the owner (the microhttpd adapter's Bridge, say) holds its mutex around every
// call, or uses it from one thread only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

namespace cwsgi::exec {

class ByteFifo {
public:
    explicit ByteFifo(size_t capacity) : capacity_(capacity) {}

    /// Bytes waiting to be read.
    size_t size() const { return buf_.size() - head_; }
    bool empty() const { return size() == 0; }
    size_t capacity() const { return capacity_; }
    /// Bytes push() would accept now, given a limit that may be below the capacity.
    size_t space(size_t limit) const
    {
        limit = std::min(limit, capacity_);
        return size() >= limit ? 0 : limit - size();
    }
    /// The unread bytes, contiguous, valid until the next push/pop/clear.
    const char *data() const { return buf_.data() + head_; }

    /// Appends up to `n` bytes without passing `limit` (at most the capacity).
    /// Returns how many were taken (0 when full).
    size_t push(const void *src, size_t n, size_t limit)
    {
        n = std::min(n, space(limit));
        if (n == 0) return 0;
        if (head_ > 0 && buf_.size() + n > capacity_) {
            // Reclaim the consumed front so the string never grows past the capacity.
            buf_.erase(0, head_);
            head_ = 0;
        }
        buf_.append(static_cast<const char *>(src), n);
        return n;
    }

    /// Moves up to `n` bytes into `dst`. Returns how many (0 when empty).
    size_t pop(void *dst, size_t n)
    {
        n = std::min(n, size());
        if (n == 0) return 0;
        std::memcpy(dst, buf_.data() + head_, n);
        consume(n);
        return n;
    }

    /// Drops `n` (<= size()) bytes from the front.
    void consume(size_t n)
    {
        head_ += n;
        if (head_ == buf_.size()) clear();
    }

    /// Drops everything; keeps the storage for reuse.
    void clear()
    {
        buf_.clear();
        head_ = 0;
    }

private:
    std::string buf_;
    size_t head_ = 0;
    size_t capacity_;
};

} // namespace cwsgi::exec
