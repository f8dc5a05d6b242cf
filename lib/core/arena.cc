// arena.cc: the per-request arena and its block free list (see arena.hh).
//
// Blocks are recycled through a small per-thread cache in front of one locked list: an
// adapter that creates and destroys a request on the same thread never takes the lock; one
// that creates on the event loop and destroys on an app thread takes it once each way.
#include "arena.hh"

#include <cstdint>
#include <mutex>
#include <new>

#include "futex.hh"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
// A block in the free list is poisoned, so that a view kept past its request is reported
// as a use after free by ASan builds, as it would be with plain new/delete.
#define CWSGI_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CWSGI_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CWSGI_POISON(p, n) ((void)(p), (void)(n))
#define CWSGI_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace cwsgi::core {

namespace {

constexpr size_t kAlign = alignof(std::max_align_t);
constexpr size_t kHeader = (sizeof(void *) + sizeof(size_t) + kAlign - 1) & ~(kAlign - 1);
constexpr size_t kPayload = Arena::kBlockSize - kHeader;
constexpr size_t kThreadCache = 16;   // blocks a thread keeps for itself
constexpr size_t kSharedCache = 1024; // blocks the process keeps (4 MiB) beyond that

struct FreeBlock {
    FreeBlock *next;
};

struct SharedList {
    FutexMutex mutex;
    FreeBlock *head = nullptr;
    size_t count = 0;
};

SharedList &shared_list()
{
    static SharedList *list = new SharedList(); // never destroyed: threads may free late
    return *list;
}

// The link of a free block stays readable; the rest is poisoned while the block waits.
void poison(FreeBlock *b)
{
    CWSGI_POISON(reinterpret_cast<unsigned char *>(b) + sizeof(FreeBlock), Arena::kBlockSize - sizeof(FreeBlock));
}
void *unpoison(FreeBlock *b)
{
    CWSGI_UNPOISON(b, Arena::kBlockSize);
    return b;
}

struct ThreadCache {
    FreeBlock *head = nullptr;
    size_t count = 0;
    ~ThreadCache()
    {
        while (head != nullptr) {
            FreeBlock *b = head;
            head = b->next;
            ::operator delete(unpoison(b));
        }
    }
};

thread_local ThreadCache t_cache;

void *get_block()
{
    ThreadCache &tc = t_cache;
    if (tc.head != nullptr) {
        FreeBlock *b = tc.head;
        tc.head = b->next;
        --tc.count;
        return unpoison(b);
    }
    SharedList &sl = shared_list();
    {
        std::lock_guard<FutexMutex> lock(sl.mutex);
        if (sl.head != nullptr) {
            FreeBlock *b = sl.head;
            sl.head = b->next;
            --sl.count;
            return unpoison(b);
        }
    }
    return ::operator new(Arena::kBlockSize, std::nothrow);
}

void put_block(void *p)
{
    auto *b = static_cast<FreeBlock *>(p);
    ThreadCache &tc = t_cache;
    if (tc.count < kThreadCache) {
        b->next = tc.head;
        tc.head = b;
        ++tc.count;
        poison(b);
        return;
    }
    SharedList &sl = shared_list();
    {
        std::lock_guard<FutexMutex> lock(sl.mutex);
        if (sl.count < kSharedCache) {
            b->next = sl.head;
            sl.head = b;
            ++sl.count;
            poison(b);
            return;
        }
    }
    ::operator delete(p);
}

} // namespace

void *Arena::alloc_slow(size_t size)
{
    if (size == 0) size = 1;
    if (size > SIZE_MAX / 2) return nullptr;
    size_t need = (size + kAlign - 1) & ~(kAlign - 1);
    if (need > left_) {
        // A pooled block when the request fits one; a block of its own for a big request.
        size_t payload = need <= kPayload ? kPayload : need;
        void *mem = payload == kPayload ? get_block() : ::operator new(kHeader + payload, std::nothrow);
        if (mem == nullptr) return nullptr;
        auto *b = static_cast<Block *>(mem);
        b->next = blocks_;
        b->size = payload;
        blocks_ = b;
        next_ = static_cast<unsigned char *>(mem) + kHeader;
        left_ = payload;
    }
    void *p = next_;
    next_ += need;
    left_ -= need;
    used_ += need;
    return p;
}

void *BlockAllocated::operator new(size_t size)
{
    void *p = size <= Arena::kBlockSize ? get_block() : ::operator new(size, std::nothrow);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

void BlockAllocated::operator delete(void *p, size_t size) noexcept
{
    if (p == nullptr) return;
    if (size <= Arena::kBlockSize) {
        put_block(p);
    } else {
        ::operator delete(p);
    }
}

void Arena::release()
{
    while (blocks_ != nullptr) {
        Block *b = blocks_;
        blocks_ = b->next;
        if (b->size == kPayload) {
            put_block(b);
        } else {
            ::operator delete(b);
        }
    }
    next_ = nullptr;
    left_ = 0;
    used_ = 0;
}

} // namespace cwsgi::core
