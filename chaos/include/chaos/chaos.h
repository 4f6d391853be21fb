/* chaos.h: the controlled-execution engine. A scenario is a set of actors, each a small
 * program of VDI calls; the engine runs them as fibers in one thread, one at a time, and
 * a strategy picks who runs at every schedule point of the reference. Time is virtual,
 * faults come from a plan, and the whole run is determined by its decision list. */
#ifndef CHAOS_CHAOS_H
#define CHAOS_CHAOS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHAOS_MAX_ACTORS 16

typedef enum chaos_strategy {
    CHAOS_RANDOM = 0, /* uniform among runnable actors, seeded */
    CHAOS_PCT = 1,    /* probabilistic concurrency testing, depth d */
    CHAOS_REPLAY = 2, /* a recorded decision list */
    CHAOS_BYTES = 3,  /* decisions read from bytes (fuzz input), then the lowest actor */
    CHAOS_DFS = 4     /* bounded exhaustive: a prefix, then no preemption (chaos_dfs_next) */
} chaos_strategy;

typedef enum chaos_outcome {
    CHAOS_DONE = 0,       /* every actor returned */
    CHAOS_HANG = 1,       /* every live actor blocked with no deadline to jump to */
    CHAOS_STEP_LIMIT = 2, /* the step bound ended a runaway run */
    CHAOS_FINDING = 3     /* an oracle reported (chaos_report) */
} chaos_outcome;

typedef enum chaos_fault_mode {
    CHAOS_FAULT_NONE = 0,
    CHAOS_FAULT_ONCE = 1,       /* fail the n-th fail-point call only */
    CHAOS_FAULT_PERSISTENT = 2, /* fail the n-th call and every later one */
    CHAOS_FAULT_RANDOM = 3      /* fail each call with probability 1/n, seeded */
} chaos_fault_mode;

typedef struct chaos_config {
    chaos_strategy strategy;
    uint64_t seed;
    unsigned pct_depth;   /* PCT: bug depth d (>= 1) */
    unsigned pct_steps;   /* PCT: estimated steps per run (change points fall in it) */
    uint32_t max_steps;   /* 0: 100000 */
    const uint8_t *bytes; /* CHAOS_BYTES */
    size_t nbytes;
    const uint32_t *decisions; /* CHAOS_REPLAY */
    size_t ndecisions;
    chaos_fault_mode fault_mode;
    uint32_t fault_n;         /* which call (1-based), or 1/n probability */
    int fault_errno;          /* the errno injected (default ENOMEM) */
    const char *fault_point;  /* only calls of this point count (NULL: every point) */
    int record_events;        /* keep the timeline (chaos_events) */
    int record_notes;         /* ... with the calls, results and faults in it (chaos_note) */
    unsigned dfs_preemptions; /* CHAOS_DFS: at most this many preemptions per run */
    /* Free-running mode: actors are real threads in real time, for what a serialising
     * engine cannot show; at schedule points each may yield the CPU a few times, decided
     * by a PRNG seeded from (seed, actor) when free_delays is set. Not replayable step by
     * step, and no hang detection (a deadlock is a test timeout). */
    int free_running;
    int free_delays;
    /* If the process dies during the run (a signal, a sanitizer's report, the unmap
     * guard), the engine says so on stderr (the run's label, strategy, seed, step, actor
     * and point) and, given a path here or in VDICHAOS_CRASH_FILE, writes the run so far
     * there as a vdichaos replay file, which replays to the same death. */
    const char *crash_file;
    const char *label; /* the scenario's name (chaos_scenario_run fills it in) */
    /* Access points (vdi_seams.access_point): a schedule point before every atomic access
     * the library makes, 1: of a word in a shared mapping (rings, state and sequence words),
     * 2: of any word (the private lock and gate too). They reach the windows between two
     * accesses that no named point separates, such as a ring index published with a
     * relaxed store before the barrier after it. 0 (default): VDICHAOS_ACCESS_POINTS. Runs
     * take several times the steps, and a decision list replays only with the same mode. */
    int access_points;
    /* The set's shared-memory objects come from the engine's pool (chaos_shm_open below)
     * instead of /dev/shm, and go back to it when the engine is freed. chaos_scenario_run
     * sets it unless VDICHAOS_SHM_POOL=0; a caller that looks for the objects in /dev/shm
     * leaves it 0. */
    int shm_pool;
} chaos_config;

/* One step of the timeline: which actor ran, and the schedule point where it stopped. */
typedef struct chaos_event {
    uint32_t step;
    int actor;
    const char *point; /* where the actor stopped, or the text of a note */
    uint64_t now;
    int note; /* 1: a note (a call, its result, an injected fault), not a schedule point */
} chaos_event;

typedef struct chaos_engine chaos_engine;

chaos_engine *chaos_engine_new(const chaos_config *cfg);
void chaos_engine_free(chaos_engine *e);

/* Add an actor before chaos_run; fn runs on a fiber of its own. Returns its id (1..). */
int chaos_spawn(chaos_engine *e, const char *name, void (*fn)(void *), void *arg);

/* Run every actor to completion under the strategy; install the seams first. */
chaos_outcome chaos_run(chaos_engine *e);

/* Route the reference's seams (vdi_seams.h) to this engine; NULL restores the defaults.
 * Outside chaos_run the hooks behave like the real system. */
void chaos_seams_install(chaos_engine *e);

/* A schedule point of the scenario itself (the reference's come through the seams). */
void chaos_point(chaos_engine *e, const char *name);

/* The engine running on this thread, or NULL. */
chaos_engine *chaos_current(void);
/* The running actor's id (0 outside actors) and name. */
int chaos_actor_id(const chaos_engine *e);
const char *chaos_actor_name(const chaos_engine *e, int id);

/* The engine's blocking, as the reference's wait/wake seam sees it: block while *word ==
 * expected, at most timeout_ms of virtual time (< 0: forever); 0 woken, ETIMEDOUT. */
int chaos_wait(chaos_engine *e, uint32_t *word, uint32_t expected, long timeout_ms);
void chaos_wake(chaos_engine *e, uint32_t *word);

/* With cfg.record_notes: a line of the timeline at the current step and actor (a call,
 * what it returned, an injected fault). Not part of the trace hash. */
void chaos_note(chaos_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int chaos_notes_on(const chaos_engine *e); /* chaos_note keeps what it is given */

/* Virtual time in ms; starts at 1,000,000 so that "now - 0" is never small. */
uint64_t chaos_now(const chaos_engine *e);

/* Declare the peer dead: peer_alive answers 0 and liveness slices expire. The peer is the
 * client process (the server watches it); chaos_kill_server_peer: the server's process
 * (the clients watch it). To the model oracle, an abort by that side. */
void chaos_kill_peer(chaos_engine *e);
void chaos_kill_server_peer(chaos_engine *e);
int chaos_peer_dead(const chaos_engine *e);

/* An oracle found something: the run ends as CHAOS_FINDING after this actor's step.
 * The first report is kept. */
void chaos_report(chaos_engine *e, const char *oracle, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* After a run. */
uint64_t chaos_trace_hash(const chaos_engine *e);
uint32_t chaos_steps(const chaos_engine *e);
size_t chaos_decisions(const chaos_engine *e, const uint32_t **out);
/* For each decision, the choice that would have let the previous actor go on (-1 when it
 * could not); a decision that differs from it is a preemption. Same length as decisions. */
size_t chaos_stays(const chaos_engine *e, const int8_t **out);
const char *chaos_finding(const chaos_engine *e); /* "" when none */
uint32_t chaos_faults_injected(const chaos_engine *e);
uint32_t chaos_fault_calls(const chaos_engine *e); /* fail-point calls that counted */
int chaos_faults_armed(const chaos_engine *e);
/* The distinct fail points the library asked during the run (setup included). */
size_t chaos_fail_points_seen(const chaos_engine *e, const char *const **names);
size_t chaos_events(const chaos_engine *e, const chaos_event **out);
/* CHAOS_DFS: after a run, the decision prefix of the next schedule to explore (written to
 * out, at most cap entries); returns its length, or 0 when the search is complete. A
 * preemption is a switch away from an actor that could have gone on. */
size_t chaos_dfs_next(const chaos_engine *e, uint32_t *out, size_t cap);
int chaos_actor_count(const chaos_engine *e);
/* The blocked actors of a hang, one line each, into buf. */
void chaos_describe_blocked(const chaos_engine *e, char *buf, size_t cap);

/* ---- the unmap guard (chaos_guard.c) ---- */
/* Unmapped views stay reserved PROT_NONE and poisoned; a touch reports use-after-unmap
 * with the stack that unmapped them. Installed by chaos_seams_install. */
void chaos_guard_install(void);
int chaos_guard_unmap(void *addr, size_t len);
/* The same, when only the first `used` bytes were ever mapped (only they are poisoned). */
int chaos_guard_unmap_used(void *addr, size_t len, size_t used);
/* The same for the whole of a mapping the caller reserved: when it leaves the quarantine it
 * is kept, PROT_NONE, for chaos_guard_reserve. */
int chaos_guard_unmap_reservation(void *addr, size_t len, size_t used);
/* A reservation of exactly len bytes (PROT_NONE, anonymous, no pages) that left the
 * quarantine, or NULL. */
void *chaos_guard_reserve(size_t len);
void chaos_guard_release_all(void);
size_t chaos_guard_quarantined(void);

/* ---- the pool of shared-memory objects (chaos_engine.c) ---- */
/* shm_open(3) and shm_unlink(3) as the engine's seams give them: memfds kept between runs
 * that behave as fresh objects (size 0, the mode asked for less the umask, EEXIST for a
 * live name, ENOENT for a missing one), never in /dev/shm. A name the pool does not hold
 * is unlinked in the system. */
int chaos_shm_open(const char *name, int oflag, unsigned mode);
int chaos_shm_unlink(const char *name);
/* 1 while name is bound to a pooled object: created and not unlinked (a leak at a run's
 * end). */
int chaos_shm_bound(const char *name);
/* Installs the pool's hooks alone (shm_open, shm_unlink, and map and unmap that keep its
 * account of what still maps an object): for code that closes a pooled engine's sets after
 * the run, with no engine (a scenario's cleanup). */
void chaos_seams_install_pool(void);
/* At the end of a run (chaos_engine_free of a pooled engine does it): unlinked objects
 * that nothing maps go back to the pool. */
void chaos_shm_recycle(void);
/* The descriptors the pool holds (not a run's), and how many objects it made and reused. */
int chaos_shm_pool_fds(void);
void chaos_shm_pool_stats(unsigned long *created, unsigned long *reused);

#ifdef __cplusplus
}
#endif

#endif /* CHAOS_CHAOS_H */
