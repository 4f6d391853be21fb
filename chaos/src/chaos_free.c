/* chaos_free.c: the free-running mode (cfg.free_running). The actors are real threads in
 * real time, for what a serialising engine cannot show; at each schedule point an actor may
 * yield the CPU a few times, as a PRNG seeded from (seed, actor) decides when free_delays is
 * set. The engine's fault plan, findings and liveness still apply (chaos_engine.c takes a
 * mutex for them in this mode); there is no replay and no hang detection. */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "chaos_engine.h"

static uint64_t real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static _Thread_local int t_free_actor;    /* free-running mode: this thread's actor id */
static _Thread_local uint64_t t_free_rng; /* free-running mode: this thread's delays */

typedef struct free_arg {
    chaos_engine *e;
    int i;
} free_arg;

static void *free_thread(void *p) {
    free_arg *fa = p;
    chaos_engine *e = fa->e;
    actor *a = &e->a[fa->i];
    chaos_engine_bind_thread(e);
    t_free_actor = a->id;
    t_free_rng = e->cfg.seed ^ ((uint64_t)(unsigned)a->id * 0x9e3779b97f4a7c15ull);
    a->fn(a->arg);
    return NULL;
}

chaos_outcome chaos_free_run(chaos_engine *e) {
    pthread_t th[CHAOS_MAX_ACTORS];
    free_arg fa[CHAOS_MAX_ACTORS];
    int started = 0;
    e->free_start = real_ms();
    for (int i = 0; i < e->n; i++) {
        fa[i] = (free_arg){e, i};
        if (pthread_create(&th[i], NULL, free_thread, &fa[i]) != 0) {
            chaos_report(e, "setup", "cannot start a thread for actor %s", e->a[i].name);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        e->a[i].state = A_DONE;
    }
    return e->has_finding ? CHAOS_FINDING : CHAOS_DONE;
}

void chaos_free_point(chaos_engine *e) {
    if (e->cfg.free_delays && t_free_actor) { /* a seeded, real-time perturbation */
        uint64_t r = chaos_splitmix(&t_free_rng);
        for (unsigned k = (r & 3) == 0 ? 1u + (unsigned)((r >> 2) & 3) : 0u; k; k--)
            sched_yield();
    }
}

int chaos_free_actor_id(void) {
    return t_free_actor;
}

uint64_t chaos_free_now(const chaos_engine *e) {
    return START_TIME + (e->free_start ? real_ms() - e->free_start : 0);
}
