// arena.hh: per-request memory (MEM-ARENA-1): a bump allocator over fixed-size blocks that
// come from a process-wide free list, so that a request in steady state allocates nothing
// from the heap.
//
// An adapter fills a RequestHead's arena with the request's strings (RequestHead::keep and
// add_header); Request::create takes that arena over, places the Request itself in it, and
// releases every block at once when the request is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace cwsgi::core {

/// Copies `n` bytes from `src` to `dst` (not overlapping). Request strings are short (a
/// method, a port, a header name), and for them a libc memcpy call costs more than the copy:
/// up to 16 bytes go as two overlapping loads and stores that the compiler emits inline.
inline void copy_bytes(char *dst, const char *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        std::memcpy(&a, src, 8);
        std::memcpy(&b, src + n - 8, 8);
        std::memcpy(dst, &a, 8);
        std::memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        std::memcpy(&a, src, 4);
        std::memcpy(&b, src + n - 4, 4);
        std::memcpy(dst, &a, 4);
        std::memcpy(dst + n - 4, &b, 4);
    } else if (n > 16) {
        std::memcpy(dst, src, n);
    } else {
        for (size_t i = 0; i < n; ++i) dst[i] = src[i];
    }
}

class Arena {
public:
    Arena() = default;
    ~Arena() { release(); }
    Arena(Arena &&other) noexcept { take(other); }
    Arena &operator=(Arena &&other) noexcept
    {
        if (this != &other) {
            release();
            take(other);
        }
        return *this;
    }
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;

    /// Returns `size` bytes aligned for any type, valid until release(); nullptr when the
    /// heap is exhausted or `size` is absurd. Threads: one at a time (the request's owner).
    void *alloc(size_t size)
    {
        // The common case inline: a bump in the current block.
        size_t need = (size + kAlign - 1) & ~(kAlign - 1);
        if (size != 0 && need <= left_ && need >= size) {
            void *p = next_;
            next_ += need;
            left_ -= need;
            used_ += need;
            return p;
        }
        return alloc_slow(size);
    }
    /// Copies `s` with a terminating NUL after it (ABI-TYPE-2) and returns the copy (an empty
    /// view of "" when out of memory, so callers never see a dangling pointer).
    std::string_view copy(std::string_view s)
    {
        auto *p = static_cast<char *>(alloc(s.size() + 1));
        if (p == nullptr) return std::string_view("");
        copy_bytes(p, s.data(), s.size());
        p[s.size()] = '\0';
        return {p, s.size()};
    }
    /// Bytes handed out since the last release.
    size_t bytes() const { return used_; }
    /// Gives every block back: pool-sized blocks to the free list, larger ones to the heap.
    void release();

    /// The size of a pooled block, its header included.
    static constexpr size_t kBlockSize = 4096;

private:
    static constexpr size_t kAlign = alignof(std::max_align_t);
    void *alloc_slow(size_t size);

    struct Block {
        Block *next;
        size_t size; // bytes after the header
    };
    void take(Arena &other)
    {
        blocks_ = other.blocks_;
        next_ = other.next_;
        left_ = other.left_;
        used_ = other.used_;
        other.blocks_ = nullptr;
        other.next_ = nullptr;
        other.left_ = 0;
        other.used_ = 0;
    }

    Block *blocks_ = nullptr; // newest first
    unsigned char *next_ = nullptr;
    size_t left_ = 0;
    size_t used_ = 0;
};

/// Gives a class operator new and delete from the arena's block free list, for an adapter's
/// per-request object (a libmicrohttpd Bridge, an h2o Stream), so that a request in steady
/// state takes no heap allocation for it either. An object that fits a block
/// (Arena::kBlockSize bytes) takes one; a bigger one comes from the heap. new throws
/// std::bad_alloc when the heap is exhausted, as the global one does. Threads: any; an object
/// may be freed on another thread than the one that made it.
struct BlockAllocated {
    static void *operator new(size_t size);
    static void operator delete(void *p, size_t size) noexcept;
};

} // namespace cwsgi::core
