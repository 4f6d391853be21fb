/* chaos_engine.h: the engine's own types (internal to chaos/src): an actor, the engine
 * itself, and what its parts outside chaos_engine.c use (the free-running mode in
 * chaos_free.c, the fiber switch in chaos_fiber.h). The public interface is
 * include/chaos/chaos.h. */
#ifndef CHAOS_ENGINE_H
#define CHAOS_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "chaos/chaos.h"
#include "chaos/sanitizer.h"
#include "chaos_fiber.h"
#include "chaos_internal.h"

/* The engine's bookkeeping touched from actor context, hidden from TSan (chaos/sanitizer.h). */
#define ENGINE_BEGIN() CHAOS_TSAN_IGNORE_BEGIN()
#define ENGINE_END() CHAOS_TSAN_IGNORE_END()
#define TSAN_NO_SYNC CHAOS_TSAN_NO_SYNC

#ifdef CHAOS_ASAN
#define STACK_SIZE (1u << 20)
#else
#define STACK_SIZE (256u << 10)
#endif
#define MAIN_SELF ((uintptr_t)0x10000)
#define START_TIME 1000000u

enum { A_RUNNABLE, A_BLOCKED, A_DONE };

/* A futex word is identified the way the kernel does it: by the shared object and offset
 * when it lives in a shared mapping (the two sides of a set map it at two addresses), by
 * its address otherwise. */
typedef struct word_key {
    int shared;        /* 0 for private memory */
    uint64_t dev, ino; /* the shared object */
    uint64_t where;    /* offset in the object, or the address */
} word_key;

#define MAX_MAPPINGS 256
#define MAX_RESERVATIONS 16
#define RESERVE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

typedef struct mapping {
    uintptr_t start;
    size_t len;
    uint64_t dev, ino; /* the object mapped */
    uint64_t off;
} mapping;

typedef struct actor {
    int id;
    const char *name;
    void (*fn)(void *);
    void *arg;
    chaos_fiber ctx;
    uint8_t *stack; /* mapping, including one guard page */
    size_t stack_len;
    int state;
    const char *point; /* the last schedule point, or where it blocks */
    uint32_t *word;
    word_key key;
    uint64_t deadline;
    int has_deadline;
    int liveness;
    int wake_rc;
    unsigned prio;
    void *fake_stack;
    void *tsan_fiber;
} actor;

struct chaos_engine {
    chaos_config cfg;
    actor a[CHAOS_MAX_ACTORS];
    int n;
    int cur; /* index of the running actor, -1 in the scheduler */
    int last;
    chaos_fiber sched;
    const void *sched_bottom;
    size_t sched_size;
    void *sched_fake;
    void *sched_fiber;
    uint64_t now;
    uint32_t steps;
    uint64_t rng;
    uint64_t fault_rng; /* CHAOS_FAULT_RANDOM's own stream: the same under every strategy */
    uint32_t change[16];
    unsigned nchange;
    uint32_t *dec;
    uint8_t *alts; /* per decision: how many actors were runnable */
    int8_t *stay;  /* per decision: the index that would not preempt, or -1 */
    size_t ndec, capdec, replay_pos, byte_pos;
    uint64_t hash;
    int peer_dead;
    int has_finding;
    char finding[1024];
    uint32_t fault_calls, faults;
    int faulting;
    mapping maps[MAX_MAPPINGS];
    int nmaps;
    struct {
        uintptr_t start;
        size_t len;
    } resv[MAX_RESERVATIONS]; /* the views' reservations made through the map seam */
    int nresv;
    chaos_event *ev;
    size_t nev, capev;
    const char *fail_seen[128]; /* distinct fail points asked during the run */
    size_t nfail_seen;
    pthread_mutex_t free_mu; /* free-running mode: findings and the fault plan */
    uint64_t free_start;
    const chaos_observer *observer; /* chaos_engine_observe, or NULL */
};

static inline uint64_t chaos_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* chaos_engine.c: the engine this thread runs for (what chaos_current() answers). */
void chaos_engine_bind_thread(chaos_engine *e);

/* ---- chaos_free.c: the free-running mode (cfg.free_running) ------------------------------ */
chaos_outcome chaos_free_run(chaos_engine *e);  /* every actor a real thread, joined */
void chaos_free_point(chaos_engine *e);         /* a schedule point: the seeded delays */
int chaos_free_actor_id(void);                  /* this thread's actor, 0 outside them */
uint64_t chaos_free_now(const chaos_engine *e); /* real milliseconds since the run began */

#endif
