/* chaos_run.c: one run of a scenario under the engine, judged: the seams installed, the model
 * oracle recording, the scenario's actors run by the strategy, its checks and the model's
 * after a finished run, then the resource oracle (file descriptors, threads, the set's name
 * left behind); a finding's text ends with the library's own account of its error sites. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chaos_linearizer.h"
#include "chaos_recorder.h"
#include "chaos_session.h"
#include "vdi/vdi_seams.h"

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The resources oracle: after a run that ended clean (or a setup that failed under an
 * injected fault), no file descriptor, thread or shared-memory name is left behind: not
 * bound in the engine's pool of objects, nor in /dev/shm. fds counts the process's
 * descriptors before the run less the pool's own, which may grow or shrink in a run. */
static void check_resources(chaos_engine *e, int fds, int threads, const char *name,
                            int free_mode) {
    int fds_after = count_entries("/proc/self/fd") - chaos_shm_pool_fds(),
        threads_after = count_entries("/proc/self/task");
    if (fds >= 0 && fds_after > fds)
        chaos_report(e, "resources", "%d file descriptors left open", fds_after - fds);
    /* (in free-running mode the actors' own threads may linger an instant after join) */
    if (threads >= 0 && threads_after > threads && !free_mode)
        chaos_report(e, "resources", "%d threads left running", threads_after - threads);
    char path[160];
    int fd =
        vdi_seam_shm_name(path, sizeof path, NULL, name) == 0 ? shm_open(path, O_RDONLY, 0) : -1;
    if (fd >= 0) {
        close(fd);
        chaos_report(e, "resources", "the set's name %s is left in /dev/shm", path);
    } else if (chaos_shm_bound(path)) {
        chaos_report(e, "resources", "the set's name %s is left (never unlinked)", path);
    }
}

static void add_site(char *out, size_t cap, const char *set, const char *what,
                     const vdi_error_site *e) {
    size_t n = strlen(out);
    if (e->file && n < cap)
        snprintf(out + n, cap - n, "\n  %s %s: %s:%d: %s (%s)", set, what, e->file, e->line,
                 e->why ? e->why : "", vdi_strerror(e->code));
}

/* The library's own account of a run that ended in a finding, for its text: where the
 * sets' last failures were raised and what aborted each (vdi_seam_*_error_site). A set
 * whose lock a stopped thread holds says so. */
static void error_sites(char *out, size_t cap) {
    struct {
        const char *name;
        int rc;
        vdi_error_site failed, aborted;
    } sides[3] = {{.name = "client set"}, {.name = "server set"}, {.name = "secondary set"}};
    sides[0].rc =
        S.client ? vdi_seam_client_error_site(S.client, &sides[0].failed, &sides[0].aborted) : -1;
    sides[1].rc =
        S.server ? vdi_seam_server_error_site(S.server, &sides[1].failed, &sides[1].aborted) : -1;
    sides[2].rc = S.secondary
                      ? vdi_seam_client_error_site(S.secondary, &sides[2].failed, &sides[2].aborted)
                      : -1;
    char body[480] = "";
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(body);
        if (sides[i].rc == 1 && n < sizeof body)
            snprintf(body + n, sizeof body - n, "\n  %s: its lock is held by a stopped thread",
                     sides[i].name);
        if (sides[i].rc != 0)
            continue;
        add_site(body, sizeof body, sides[i].name, "last failure", &sides[i].failed);
        add_site(body, sizeof body, sides[i].name, "aborted by", &sides[i].aborted);
    }
    if (body[0])
        snprintf(out, cap, "\nerror sites (the library's own account):%s", body);
}

int chaos_scenario_run(const chaos_scenario *sc, const chaos_config *cfg, chaos_result *r) {
    static int swept; /* the sets of runs that died with the process, in an earlier one */
    if (!swept) {
        swept = 1;
        (void)vdi_seam_reclaim_dead("chaos-");
    }
    memset(r, 0, sizeof *r);
    chaos_config named = *cfg;
    if (!named.label)
        named.label = sc->name; /* for the note a death of the process leaves */
    /* The sets' objects from the engine's pool, kept between runs (VDICHAOS_SHM_POOL=0:
     * the system's, in /dev/shm, to compare). */
    const char *pool = getenv("VDICHAOS_SHM_POOL");
    named.shm_pool = !cfg->free_running && !(pool && strcmp(pool, "0") == 0);
    chaos_engine *e = chaos_engine_new(&named);
    if (!e)
        abort();
    int fds = count_entries("/proc/self/fd") - chaos_shm_pool_fds(),
        threads = count_entries("/proc/self/task");
    chaos_seams_install(e);
    /* The reference's own invariant checks (debug builds) stop a run that breaks one
     * before any oracle sees it; VDICHAOS_NO_INVARIANTS=1 leaves the bug to the oracles. */
    const char *no_inv = getenv("VDICHAOS_NO_INVARIANTS");
    vdi_seam_debug_invariants(!(no_inv && *no_inv && strcmp(no_inv, "0")));
    /* Every call is recorded (chaos_recorder.h: the history, and the timeline's lines),
     * whether the model oracle judges the history or not: VDICHAOS_NO_MODEL=1 turns the
     * judgement off, to measure what it costs. */
    const char *no_model = getenv("VDICHAOS_NO_MODEL");
    int model = !cfg->free_running && !(no_model && *no_model && strcmp(no_model, "0"));
    if (!cfg->free_running) /* real threads: one actor at a time no more */
        chaos_recorder_start(e);
    sc->setup(e);
    chaos_outcome out = chaos_run(e);
    if (out == CHAOS_DONE) {
        sc->check(e);
        if (!chaos_finding(e)[0] && model)
            r->model_checked = chaos_linearize(e, chaos_recorder_end());
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    chaos_recorder_stop();
    chaos_seams_install(NULL);
    char sites[512] = "";
    if (out != CHAOS_DONE || chaos_finding(e)[0])
        error_sites(sites, sizeof sites);
    char name[sizeof S.name];
    memcpy(name, S.name, sizeof name);
    if (named.shm_pool)
        chaos_seams_install_pool(); /* the closes unlink and unmap pooled objects */
    sc->cleanup(out == CHAOS_DONE);
    chaos_seams_install(NULL);
    if (out == CHAOS_DONE) {
        check_resources(e, fds, threads, name, cfg->free_running);
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    r->outcome = out;
    r->finding = out != CHAOS_DONE;
    snprintf(r->text, sizeof r->text, "%s%s", chaos_finding(e), sites);
    r->hash = chaos_trace_hash(e);
    r->steps = chaos_steps(e);
    r->faults_injected = chaos_faults_injected(e);
    const char *const *fp;
    r->nfail_points = chaos_fail_points_seen(e, &fp);
    memcpy(r->fail_points, fp, r->nfail_points * sizeof *fp);
    r->actors = chaos_actor_count(e);
    for (int id = 0; id <= r->actors; id++)
        r->actor_names[id] = chaos_actor_name(e, id);
    const uint32_t *d;
    r->ndecisions = chaos_decisions(e, &d);
    r->decisions = malloc((r->ndecisions + 1) * sizeof *d);
    if (r->decisions && r->ndecisions)
        memcpy(r->decisions, d, r->ndecisions * sizeof *d);
    const int8_t *st;
    (void)chaos_stays(e, &st);
    r->stays = malloc(r->ndecisions + 1);
    for (size_t i = 0; r->stays && i < r->ndecisions; i++) {
        r->stays[i] = st[i];
        r->preemptions += st[i] >= 0 && (uint32_t)st[i] != d[i];
    }
    const chaos_event *ev;
    r->nevents = chaos_events(e, &ev);
    r->events = malloc((r->nevents + 1) * sizeof *ev);
    if (r->events && r->nevents)
        memcpy(r->events, ev, r->nevents * sizeof *ev);
    /* Notes are the engine's strings: the result keeps its own copies in one block. */
    size_t text = 0;
    for (size_t i = 0; r->events && i < r->nevents; i++)
        text += ev[i].note ? strlen(ev[i].point) + 1 : 0;
    r->notes = text ? malloc(text) : NULL;
    for (size_t i = 0, at = 0; r->events && i < r->nevents; i++) {
        if (!ev[i].note)
            continue;
        size_t n = strlen(ev[i].point) + 1;
        if (r->notes)
            memcpy(r->notes + at, ev[i].point, n);
        r->events[i].point = r->notes ? r->notes + at : "";
        at += n;
    }
    if (cfg->strategy == CHAOS_DFS) {
        size_t cap = r->ndecisions + 1;
        r->dfs_next = malloc(cap * sizeof *r->dfs_next);
        r->ndfs_next = r->dfs_next ? chaos_dfs_next(e, r->dfs_next, cap) : 0;
        if (!r->ndfs_next) {
            free(r->dfs_next);
            r->dfs_next = NULL;
        }
    }
    chaos_engine_free(e);
    return r->finding;
}

void chaos_result_free(chaos_result *r) {
    free(r->decisions);
    free(r->stays);
    free(r->events);
    free(r->notes);
    free(r->dfs_next);
    memset(r, 0, sizeof *r);
}
