/* atomics.h: every atomic access of the harness (chaos/, fuzz/, tests/) goes through these,
 * so the memory orders it uses are named in one place and a grep finds each one. The
 * reference has its own (ref/src/vdi_atomic.h), with its schedule and access points; these
 * have none: the harness's bookkeeping is not under test. ci/lint.sh keeps the builtins
 * out of every other harness file (tests/sched's programs, which stand in for a vendor's
 * code, spell their own).
 *
 * Relaxed is for counters and flags between actors of the one OS thread the engine runs:
 * the switches order them, and a stronger order would add happens-before edges that hide
 * the reference's own races from TSan. Acquire/release is for what one actor hands
 * another (device handles, results a callback publishes), seq_cst for futex words. The
 * macros take a pointer and work on any width the builtins do. */
#ifndef CHAOS_ATOMICS_H
#define CHAOS_ATOMICS_H

#define CHAOS_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define CHAOS_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define CHAOS_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define CHAOS_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CHAOS_LOAD_SEQ(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define CHAOS_STORE_SEQ(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

#define CHAOS_ADD_RELAXED(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define CHAOS_ADD_RELEASE(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#define CHAOS_ADD_SEQ(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define CHAOS_SUB_SEQ(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define CHAOS_OR_RELAXED(p, v) __atomic_fetch_or((p), (v), __ATOMIC_RELAXED)
#define CHAOS_EXCHANGE_ACQUIRE(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQUIRE)
/* 1 when *p was *expected and is now v (acquire and release); else *expected is what *p
 * holds (acquire). */
#define CHAOS_CAS_ACQ_REL(p, expected, v)                                                          \
    __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#endif
