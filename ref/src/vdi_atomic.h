/* vdi_atomic.h: every atomic access of the reference goes through here, so the
 * memory orders are chosen in one place and each one says what it pairs with.
 * Fields are plain uint32_t/uint64_t (also inside shared memory, where _Atomic
 * would not be portable). */
#ifndef VDI_ATOMIC_H
#define VDI_ATOMIC_H

#include <stdint.h>

/* ThreadSanitizer keys synchronisation by address, but one process may map the same
 * shared word at two addresses (the two sides of a set). So that a release through one
 * view and an acquire through the other form the happens-before edge they really are,
 * every atomic also releases/acquires an alias chosen by the word's offset inside a
 * 1 MiB window; views are 1 MiB-aligned, so both addresses of a word share the alias.
 * Unrelated words may share an alias too: that only adds edges, never a false report. */
#if defined(__SANITIZE_THREAD__)
#define VDI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VDI_TSAN 1
#endif
#endif
#define VDI_VIEW_ALIGN (1u << 20)
#ifdef VDI_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char vdi_tsan_alias[VDI_VIEW_ALIGN];
static inline void *vdi_alias_(const void *p) {
    return &vdi_tsan_alias[(uintptr_t)p & (VDI_VIEW_ALIGN - 1)];
}
#define VDI_ACQ_(p) __tsan_acquire(vdi_alias_(p))
#define VDI_REL_(p) __tsan_release(vdi_alias_(p))
#else
#define VDI_ACQ_(p) ((void)(p))
#define VDI_REL_(p) ((void)(p))
#endif

/* A harness may ask for a decision before every atomic access (vdi_seams.access_point):
 * then the window between two accesses with no named schedule point between them, such as
 * two reads of the command ring, is one more place where another actor can run. Off, it
 * costs one predicted branch per access. Bulk copies of data bytes are not points. */
extern int vdi_access_points_on; /* set by vdi_seams_install */
void vdi_access_point(const void *word);
#define VDI_AT_(p)                                                                                 \
    do {                                                                                           \
        if (__builtin_expect(vdi_access_points_on, 0))                                             \
            vdi_access_point(p);                                                                   \
    } while (0)

/* Acquire loads pair with the release stores (or RMWs) that published the data
 * they guard: ring heads/tails, state words, sequence words. */
static inline uint32_t vdi_load_acquire(const uint32_t *p) {
    VDI_AT_(p);
    uint32_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    VDI_ACQ_(p);
    return v;
}
/* The close epoch read as a call's very first act: no access point before it, since a
 * decision there cannot be told from the call being made later, while a harness would
 * count the call as started (and so as overlapping a close that ran in between). */
static inline uint32_t vdi_load_entry(const uint32_t *p) {
    uint32_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    VDI_ACQ_(p);
    return v;
}
static inline void vdi_store_release(uint32_t *p, uint32_t v) {
    VDI_AT_(p);
    VDI_REL_(p);
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/* Process-private words that no schedule depends on (this process's identity, a counter):
 * acquire and release, or a relaxed increment, with no access point. */
static inline uint32_t vdi_load_private(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void vdi_store_private(uint32_t *p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline uint32_t vdi_next_private(uint32_t *p) {
    return __atomic_add_fetch(p, 1, __ATOMIC_RELAXED);
}
static inline uint32_t vdi_load_relaxed(const uint32_t *p) {
    VDI_AT_(p);
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void vdi_store_relaxed(uint32_t *p, uint32_t v) {
    VDI_AT_(p);
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
/* Sequence bumps are full barriers: a waiter that reads the new value must also
 * see every state change made before the bump (pairs with vdi_load_acquire of
 * the word). */
static inline uint32_t vdi_fetch_add(uint32_t *p, uint32_t v) {
    VDI_AT_(p);
    VDI_REL_(p);
    uint32_t r = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
    VDI_ACQ_(p);
    return r;
}
static inline uint32_t vdi_exchange(uint32_t *p, uint32_t v) {
    VDI_AT_(p);
    VDI_REL_(p);
    uint32_t r = __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
    VDI_ACQ_(p);
    return r;
}
static inline int vdi_cas(uint32_t *p, uint32_t expected, uint32_t desired) {
    VDI_AT_(p);
    VDI_REL_(p);
    int r =
        __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    VDI_ACQ_(p);
    return r;
}
/* The same on a private lock word with no access point: for a look at a set's private
 * state from inside a harness's point (vdi_seam_*_validate), where another point must not
 * run. Acquire on success pairs with the releasing unlock of the last holder; the release
 * of vdi_unlock_quiet with the next locker's acquire. */
static inline int vdi_trylock_quiet(uint32_t *word) {
    uint32_t expected = 0;
    VDI_REL_(word);
    int r = __atomic_compare_exchange_n(word, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    VDI_ACQ_(word);
    return r;
}
static inline uint32_t vdi_unlock_quiet(uint32_t *word) { /* the word's old value */
    VDI_REL_(word);
    return __atomic_exchange_n(word, 0, __ATOMIC_RELEASE);
}
/* A process-wide switch of the library's, relaxed and with no access point (reading it
 * must not add a schedule decision). */
static inline int vdi_flag_quiet(const int *flag) {
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}
static inline void vdi_set_flag_quiet(int *flag, int v) {
    __atomic_store_n(flag, v, __ATOMIC_RELAXED);
}
/* Bytes copied in or out of shared memory: the peer may write them at any time,
 * so they are read with relaxed atomic loads of whole words (no torn or re-read
 * values). */
static inline uint64_t vdi_load64_relaxed(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void vdi_store64_relaxed(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void vdi_fence(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif /* VDI_ATOMIC_H */
