/* chaos_scenarios.c: scenarios and the ledger oracle. Every scenario builds one set with
 * the real reference, runs client device actors, the completion agent and a server actor
 * under the engine, and checks after every callback and at the end: exactly one callback
 * per command, a real code only for a command the client completed, nothing after the
 * agent or Close returned, data as sent, return codes the contract allows. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chaos/scenario.h"
#include "vdi/vdi.h"

#define NDEV 2
#define NCMD 3
#define NALL (NDEV * NCMD + NDEV) /* data commands and one flush per device */
#define BUF 4096

/* Shared by the actors on purpose: relaxed atomics keep the oracle out of TSan's view
 * without adding happens-before edges that could hide the reference's own races. */
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* How the session ends: the server closes the set prematurely, or the server ends
 * normally (a flush and close_device on each device) while the client aborts. Sends may
 * come before the agent runs; they are then rejected with their callback (code 6), which
 * the ledger accepts like any other single callback. */
enum {
    END_CLOSE,
    END_CLIENT_ABORT,
    END_CLOSE_IN_CALLBACK,
    END_WATCHDOG,
    END_SERVER_ABORT,
    END_OUT_OF_ORDER,
    END_CLIENT_DEATH
};

#define WATCHDOG_MS 50u

typedef struct {
    chaos_engine *e;
    int end; /* how the server side ends the session */
    vdi_client_set *client;
    vdi_server_set *server;
    vdi_client_device *cdev[NDEV];
    vdi_server_device *sdev[NDEV];
    uint8_t *buf[NALL];
    VDS_Command cmd[NALL];
    int ncmd;
    int calls[NALL];
    int client_ok[NALL];
    int agent_rc, agent_returned, agent_late;
    int close_rc, close_returned;
    int server_actor;  /* its id: a routine running on it is a rejected send's callback */
    int accepted;      /* sends that returned NOERROR */
    uint32_t nested;   /* 1 once the server closed from inside a callback (a futex word) */
    uint64_t start_ms; /* virtual time at the start of the run */
    int client_rc[NDEV];
    int setup_failed;
    int setup_rc;
    int dead;                 /* the client process "died": its actors stop where they are */
    int cb_order[NDEV][NALL]; /* per device: commands in callback order (real completions) */
    int ncb[NDEV];
    int cp_order[NDEV][NALL]; /* per device: commands in the order the client completed */
    int ncp[NDEV];
    char name[64];
} session;

static session S;

/* Objects of runs that ended in a finding (see cleanup_common). */
static void *abandoned[256] __attribute__((used));
static unsigned nabandoned;

static void routine(VDS_Command *cmd) {
    int i = (int)(cmd - S.cmd);
    ST(S.calls[i], LD(S.calls[i]) + 1);
    if (LD(S.calls[i]) > 1)
        chaos_report(S.e, "ledger", "command %d got a second callback (code %u)", i,
                     cmd->completionCode);
    int sync = chaos_actor_id(S.e) == LD(S.server_actor); /* a rejected send calls back itself */
    if (LD(S.agent_returned) && !sync)
        chaos_report(S.e, "ledger", "callback of command %d after the agent returned", i);
    if (LD(S.close_returned))
        chaos_report(S.e, "ledger", "callback of command %d after Close returned", i);
    if (cmd->completionCode == ERROR_SUCCESS && !LD(S.client_ok[i]))
        chaos_report(S.e, "ledger", "command %d completed with a code the client never gave", i);
    if (cmd->completionCode != ERROR_SUCCESS && cmd->completionCode != ERROR_OPERATION_ABORTED &&
        cmd->completionCode != ERROR_INVALID_HANDLE)
        chaos_report(S.e, "ledger", "command %d got unexpected code %u", i, cmd->completionCode);
    if (cmd->completionCode != ERROR_SUCCESS && cmd->bytesTransferred != 0)
        chaos_report(S.e, "ledger", "failed command %d reports %u bytes", i, cmd->bytesTransferred);
    if (cmd->completionCode == ERROR_SUCCESS) {
        int d = i < NDEV * NCMD ? i % NDEV : i - NDEV * NCMD;
        int k = LD(S.ncb[d]);
        ST(S.cb_order[d][k], i);
        ST(S.ncb[d], k + 1);
    }
    if (S.end == END_WATCHDOG && cmd->completionCode == ERROR_SUCCESS)
        chaos_report(S.e, "ledger", "command %d completed although the client never did", i);
    if (S.end == END_CLOSE_IN_CALLBACK && !sync && !LD(S.nested)) {
        /* Close from inside the agent's callback: it must not wait for this callback
         * (VDI-SPEC 5.1.4); the drain goes on when the routine returns. */
        ST(S.nested, 1u);
        ST(S.close_rc, vdi_server_set_close(S.server));
        if (LD(S.close_rc) != VD_E_PROTOCOL)
            chaos_report(S.e, "model", "close in a callback returned %s",
                         vdi_strerror(LD(S.close_rc)));
        chaos_wake(S.e, &S.nested);
    }
}

static void agent_actor(void *arg) {
    (void)arg;
    ST(S.agent_late, LD(S.close_returned)); /* started on a closed set: PROTOCOL is right */
    ST(S.agent_rc, vdi_server_set_execute_completion_agent(S.server));
    ST(S.agent_returned, 1);
}

static int complete(int d, VDC_Command *c) {
    int i = (int)c->position;
    ST(S.client_ok[i], 1); /* before the call: the agent may take it at once */
    int k = LD(S.ncp[d]);
    ST(S.cp_order[d][k], i);
    ST(S.ncp[d], k + 1);
    int rc = vdi_client_device_complete_command(
        S.cdev[d], c, ERROR_SUCCESS, c->commandCode == VDC_Write ? (uint32_t)c->size : 0, 0);
    if (rc != NOERROR) {
        ST(S.client_ok[i], 0);
        ST(S.ncp[d], k);
    }
    if (rc != NOERROR && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "complete_command returned %s", vdi_strerror(rc));
    return rc;
}

static void client_actor(void *arg) {
    int d = (int)(intptr_t)arg;
    VDC_Command *c, *held[NCMD];
    int nheld = 0, rc;
    while ((rc = vdi_client_device_get_command(S.cdev[d], VDI_INFINITE, &c)) == NOERROR) {
        if (LD(S.dead))
            return; /* a dead process makes no more calls */
        int i = (int)c->position;
        if (i < 0 || i >= S.ncmd) {
            chaos_report(S.e, "data", "device %d got a command that was not sent", d);
            break;
        }
        if (c->commandCode == VDC_Write &&
            (c->buffer == NULL || c->buffer[0] != (uint8_t)i || c->buffer[BUF - 1] != (uint8_t)i))
            chaos_report(S.e, "data", "command %d carries other data than was sent", i);
        if (S.end == END_WATCHDOG)
            continue; /* a hung client: takes commands, never completes them */
        if (S.end == END_OUT_OF_ORDER && c->commandCode == VDC_Write) {
            held[nheld++] = c; /* views stay valid until completed (VDI-SPEC 4) */
            if (nheld < NCMD)
                continue;
            while (nheld) /* all of them, last received first */
                complete(d, held[--nheld]);
            continue;
        }
        complete(d, c);
    }
    ST(S.client_rc[d], rc);
    if (rc != VD_E_ABORT && rc != VD_E_CLOSE)
        chaos_report(S.e, "model", "get_command ended with %s", vdi_strerror(rc));
}

/* The client process dies at a random point: its threads stop, it never closes, and the
 * server must notice through the liveness checks (VDI-SPEC 5.3) and abort. */
static void killer_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/killer:before");
    ST(S.dead, 1);
    chaos_kill_peer(S.e);
}

static void server_abort_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/server:before-abort");
    if (vdi_server_set_signal_abort(S.server) != NOERROR)
        chaos_report(S.e, "model", "server signal_abort failed");
}

static void client_abort_actor(void *arg) {
    (void)arg;
    chaos_point(S.e, "scenario/client:before-abort");
    if (vdi_client_set_signal_abort(S.client) != NOERROR)
        chaos_report(S.e, "model", "client signal_abort failed");
}

static void send(int d, int i) {
    int rc = vdi_server_device_send_command(S.sdev[d], &S.cmd[i]);
    if (rc == NOERROR)
        ST(S.accepted, LD(S.accepted) + 1);
    if (rc != NOERROR && rc != VD_E_PROTOCOL && rc != VD_E_ABORT)
        chaos_report(S.e, "model", "send_command returned %s", vdi_strerror(rc));
}

static void probe_routine(VDS_Command *cmd) {
    (void)cmd;
}

/* Nothing in the API says when the agent runs; a command with an unknown code is rejected
 * with VD_E_PROTOCOL before it does and VD_E_INVALID after (send_command rows 4 and 5).
 * Between probes the server sleeps 1 ms of virtual time, so the agent gets to run. */
static void await_agent(void) {
    uint32_t never = 0;
    VDS_Command probe = {.commandCode = 0, .completionRoutine = probe_routine};
    while (!LD(S.agent_returned) &&
           vdi_server_device_send_command(S.sdev[0], &probe) == VD_E_PROTOCOL)
        chaos_wait(S.e, &never, 0u, 1);
}

static void server_actor(void *arg) {
    (void)arg;
    if (S.end == END_WATCHDOG || S.end == END_OUT_OF_ORDER)
        await_agent(); /* the commands must be accepted for these scenarios to mean much */
    for (int k = 0; k < NCMD; k++)
        for (int d = 0; d < NDEV; d++)
            send(d, k * NDEV + d);
    if (S.end == END_WATCHDOG) {
        if (LD(S.agent_returned)) /* no agent (it could not start): end it ourselves */
            (void)vdi_server_set_close(S.server);
        return; /* otherwise the agent's watchdog must end the session */
    }
    if (S.end == END_CLOSE_IN_CALLBACK && LD(S.accepted)) {
        /* wait for the callback that closes the set */
        while (!LD(S.nested))
            chaos_wait(S.e, &S.nested, 0u, -1);
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        ST(S.close_rc, vdi_server_set_close(S.server)); /* premature: devices still open */
        ST(S.close_returned, 1);
        if (LD(S.close_rc) != VD_E_PROTOCOL)
            chaos_report(S.e, "model", "premature close returned %s", vdi_strerror(S.close_rc));
        return;
    }
    for (int d = 0; d < NDEV; d++) {
        send(d, NDEV * NCMD + d); /* a flush on each device, then the normal end */
        int rc = vdi_server_device_close(S.sdev[d]);
        if (rc != NOERROR && rc != VD_E_ABORT)
            chaos_report(S.e, "model", "close_device returned %s", vdi_strerror(rc));
    }
}

/* One set of NDEV devices up to Active, buffers allocated, commands filled in. */
#define STEP(call)                                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != NOERROR) {                                                                      \
            S.setup_rc = rc_;                                                                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int setup_set(chaos_engine *e, int end) {
    memset(&S, 0, sizeof S);
    S.e = e;
    S.end = end;
    static unsigned seq;
    char *name = S.name;
    snprintf(name, sizeof S.name, "chaos-%ld-%u", (long)getpid(), seq++);
    S.client = vdi_client_set_new();
    S.server = vdi_server_set_new();
    if (!S.client || !S.server) {
        S.setup_rc = VD_E_MEMORY; /* a constructor answers NULL when memory is exhausted */
        return -1;
    }
    VDConfig cfg = {.deviceCount = NDEV, .serverTimeOut = end == END_WATCHDOG ? WATCHDOG_MS : 0};
    STEP(vdi_client_set_create(S.client, name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, name));
    STEP(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0));
    STEP(vdi_server_set_request_buffers(S.server, BUF, 0, NDEV * NCMD));
    STEP(vdi_server_set_end_configuration(S.server));
    STEP(vdi_client_set_get_configuration(S.client, 0, &cfg));
    for (int d = 0; d < NDEV; d++) {
        const char *n = d == 0 ? name : "dev1";
        STEP(vdi_server_set_open_device(S.server, n, &S.sdev[d]));
        STEP(vdi_client_set_open_device(S.client, n, &S.cdev[d]));
    }
    for (int i = 0; i < NDEV * NCMD; i++) {
        STEP(vdi_server_set_allocate_buffer(S.server, &S.buf[i], BUF, 0));
        memset(S.buf[i], i, BUF);
        S.cmd[i] = (VDS_Command){.commandCode = VDC_Write,
                                 .size = BUF,
                                 .inPosition = i,
                                 .buffer = S.buf[i],
                                 .completionRoutine = routine};
    }
    for (int d = 0; d < NDEV; d++)
        S.cmd[NDEV * NCMD + d] = (VDS_Command){
            .commandCode = VDC_Flush, .inPosition = NDEV * NCMD + d, .completionRoutine = routine};
    S.ncmd = end == END_CLIENT_ABORT || end == END_SERVER_ABORT || end == END_OUT_OF_ORDER ||
                     end == END_CLIENT_DEATH
                 ? NALL
                 : NDEV * NCMD;
    S.start_ms = chaos_now(e);
    return 0;
}

/* The codes an operating-system failure may turn into (VDI-SPEC 8.12). */
static int documented_fault(int rc) {
    return rc == VD_E_MEMORY || rc == VD_E_BUSY || rc == VD_E_SECURITY || rc == VD_E_UNEXPECTED;
}

/* A setup that failed under an injected fault is a clean outcome when the code is one
 * the contract documents; the objects are released (and must leak nothing). */
static int setup_or_report(chaos_engine *e, int end) {
    if (setup_set(e, end) == 0)
        return 0;
    S.setup_failed = 1;
    if (chaos_faults_armed(e) && documented_fault(S.setup_rc)) {
        vdi_server_set_free(S.server);
        vdi_client_set_free(S.client);
        S.client = NULL;
        S.server = NULL;
        return -1;
    }
    chaos_report(e, "setup", "could not build the set: %s", vdi_strerror(S.setup_rc));
    return -1;
}

static void spawn_common(chaos_engine *e) {
    chaos_spawn(e, "agent", agent_actor, NULL);
    chaos_spawn(e, "client-dev0", client_actor, (void *)0);
    chaos_spawn(e, "client-dev1", client_actor, (void *)1);
    ST(S.server_actor, chaos_spawn(e, "server", server_actor, NULL));
}

static void setup_close_race(chaos_engine *e) {
    if (setup_or_report(e, END_CLOSE) == 0)
        spawn_common(e);
}

static void setup_end(chaos_engine *e, int end) {
    if (setup_or_report(e, end) == 0)
        spawn_common(e);
}

static void setup_close_in_callback(chaos_engine *e) {
    setup_end(e, END_CLOSE_IN_CALLBACK);
}

static void setup_server_abort(chaos_engine *e) {
    if (setup_or_report(e, END_SERVER_ABORT) == 0) {
        spawn_common(e);
        chaos_spawn(e, "server-aborter", server_abort_actor, NULL);
    }
}

static void setup_client_death(chaos_engine *e) {
    if (setup_or_report(e, END_CLIENT_DEATH) == 0) {
        spawn_common(e);
        chaos_spawn(e, "killer", killer_actor, NULL);
    }
}

static void setup_out_of_order(chaos_engine *e) {
    setup_end(e, END_OUT_OF_ORDER);
}

static void setup_watchdog(chaos_engine *e) {
    setup_end(e, END_WATCHDOG);
}

static void setup_client_abort(chaos_engine *e) {
    if (setup_or_report(e, END_CLIENT_ABORT) == 0) {
        spawn_common(e);
        chaos_spawn(e, "client-main", client_abort_actor, NULL);
    }
}

static void check_common(chaos_engine *e) {
    if (S.setup_failed)
        return;
    int aborted = 0;
    int agent = LD(S.agent_rc);
    for (int i = 0; i < S.ncmd; i++) {
        if (LD(S.calls[i]) != 1)
            chaos_report(e, "ledger", "command %d got %d callbacks", i, LD(S.calls[i]));
        aborted |= S.cmd[i].completionCode == ERROR_OPERATION_ABORTED;
    }
    for (int d = 0; d < NDEV; d++) { /* per device, callbacks in completion order */
        int ncb = LD(S.ncb[d]), ncp = LD(S.ncp[d]);
        for (int k = 0; k < ncb; k++)
            if (k >= ncp || LD(S.cb_order[d][k]) != LD(S.cp_order[d][k])) {
                chaos_report(e, "ledger",
                             "device %d: callback %d is command %d, but the client "
                             "completed command %d at that rank",
                             d, k, LD(S.cb_order[d][k]), k < ncp ? LD(S.cp_order[d][k]) : -1);
                break;
            }
    }
    if (S.end == END_OUT_OF_ORDER && agent == NOERROR)
        for (int d = 0; d < NDEV; d++)
            if (LD(S.ncb[d]) != NCMD + 1)
                chaos_report(e, "ledger", "device %d: %d real completions of %d", d, LD(S.ncb[d]),
                             NCMD + 1);
    if (chaos_faults_armed(e) && documented_fault(agent))
        return; /* the agent could not start (an injected fault); the ledger held */
    if (S.end == END_WATCHDOG) {
        if (LD(S.accepted) && agent != VD_E_ABORT)
            chaos_report(e, "model", "the watchdog did not abort: agent %s", vdi_strerror(agent));
        if (LD(S.accepted) && chaos_now(e) - S.start_ms < 2 * WATCHDOG_MS)
            chaos_report(e, "model", "aborted after %llu ms, before 2T",
                         (unsigned long long)(chaos_now(e) - S.start_ms));
        return;
    }
    if (S.end == END_CLOSE || S.end == END_CLOSE_IN_CALLBACK) {
        if (agent != (LD(S.agent_late) ? VD_E_PROTOCOL : VD_E_ABORT))
            chaos_report(e, "model", "the agent returned %s", vdi_strerror(agent));
        for (int d = 0; d < NDEV; d++)
            if (LD(S.client_rc[d]) != VD_E_ABORT)
                chaos_report(e, "model", "device %d ended with %s, not VD_E_ABORT", d,
                             vdi_strerror(LD(S.client_rc[d])));
    } else if (aborted && agent != VD_E_ABORT) {
        chaos_report(e, "model", "a 995 was delivered but the agent returned %s",
                     vdi_strerror(agent));
    } else if (agent != NOERROR && agent != VD_E_ABORT) {
        chaos_report(e, "model", "the agent returned %s", vdi_strerror(agent));
    }
}

static void cleanup_common(int clean) {
    if (clean && !S.setup_failed) {
        if (S.end != END_CLOSE && S.end != END_CLOSE_IN_CALLBACK)
            (void)vdi_server_set_close(S.server);
        (void)vdi_client_set_close(S.client);
        vdi_client_set_free(S.client);
        vdi_server_set_free(S.server);
    }
    /* After a finding, actors stopped mid-call: the objects cannot be closed and are
     * abandoned, but kept reachable so that LeakSanitizer reports only real leaks. */
    if (!clean && !S.setup_failed) {
        abandoned[nabandoned++ % 256] = S.client;
        abandoned[nabandoned++ % 256] = S.server;
        /* Nobody will close it: remove the set's name so nothing stays in /dev/shm (the
         * naming is the reference's, see ref/NOTES.md). */
        char path[160];
        snprintf(path, sizeof path, "/vdichaos-%u-.-%s", (unsigned)getuid(), S.name);
        shm_unlink(path);
    }
    memset(&S, 0, sizeof S);
}

static const chaos_scenario scenarios[] = {
    {"close-race",
     "premature server close racing two devices of three commands, their completions and "
     "the agent's callbacks",
     setup_close_race, check_common, cleanup_common},
    {"close-in-callback",
     "the server closes the set from inside the agent's first callback while commands are "
     "outstanding on two devices",
     setup_close_in_callback, check_common, cleanup_common},
    {"watchdog",
     "a client that takes commands and never completes them; the serverTimeOut watchdog "
     "must abort in virtual time",
     setup_watchdog, check_common, cleanup_common},
    {"server-abort",
     "server signal_abort from a thread of its own racing sends, completions, device closes "
     "and the agent's normal end",
     setup_server_abort, check_common, cleanup_common},
    {"out-of-order",
     "clients hold every write of a device and complete them last first; the agent must "
     "deliver each device's completions in the order the client made them",
     setup_out_of_order, check_common, cleanup_common},
    {"client-death",
     "the client process dies at a random point (simulated: its actors stop and the "
     "liveness seam says it is gone); the server must notice and drain with 995",
     setup_client_death, check_common, cleanup_common},
    {"client-abort",
     "client signal_abort racing completions, device closes and the agent's normal end",
     setup_client_abort, check_common, cleanup_common},
};

const chaos_scenario *chaos_scenarios(size_t *count) {
    *count = sizeof scenarios / sizeof scenarios[0];
    return scenarios;
}

const chaos_scenario *chaos_decode_input(const uint8_t *data, size_t size, chaos_config *cfg) {
    size_t n = sizeof scenarios / sizeof scenarios[0];
    memset(cfg, 0, sizeof *cfg);
    cfg->strategy = CHAOS_BYTES;
    cfg->record_events = 1;
    cfg->max_steps = 20000;
    if (size > 2 && (data[1] & 0x80)) {
        cfg->fault_mode = (data[1] & 1) ? CHAOS_FAULT_PERSISTENT : CHAOS_FAULT_ONCE;
        cfg->fault_n = 1u + data[2] % 32u;
        cfg->fault_errno = ENOMEM;
    }
    cfg->bytes = size > 3 ? data + 3 : NULL;
    cfg->nbytes = size > 3 ? size - 3 : 0;
    return &scenarios[size > 0 ? data[0] % n : 0];
}

const chaos_scenario *chaos_scenario_find(const char *name) {
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return &scenarios[i];
    return NULL;
}

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
 * injected fault), no file descriptor, thread or shared-memory name is left behind. */
static void check_resources(chaos_engine *e, int fds, int threads, const char *name,
                            int free_mode) {
    int fds_after = count_entries("/proc/self/fd"),
        threads_after = count_entries("/proc/self/task");
    if (fds >= 0 && fds_after > fds)
        chaos_report(e, "resources", "%d file descriptors left open", fds_after - fds);
    /* (in free-running mode the actors' own threads may linger an instant after join) */
    if (threads >= 0 && threads_after > threads && !free_mode)
        chaos_report(e, "resources", "%d threads left running", threads_after - threads);
    char path[160];
    snprintf(path, sizeof path, "/vdichaos-%u-.-%s", (unsigned)getuid(), name);
    int fd = shm_open(path, O_RDONLY, 0);
    if (fd >= 0) {
        close(fd);
        chaos_report(e, "resources", "the set's name %s is left in /dev/shm", path);
    }
}

int chaos_scenario_run(const chaos_scenario *sc, const chaos_config *cfg, chaos_result *r) {
    memset(r, 0, sizeof *r);
    chaos_engine *e = chaos_engine_new(cfg);
    if (!e)
        abort();
    int fds = count_entries("/proc/self/fd"), threads = count_entries("/proc/self/task");
    chaos_seams_install(e);
    sc->setup(e);
    chaos_outcome out = chaos_run(e);
    if (out == CHAOS_DONE) {
        sc->check(e);
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    chaos_seams_install(NULL);
    char name[sizeof S.name];
    memcpy(name, S.name, sizeof name);
    sc->cleanup(out == CHAOS_DONE);
    if (out == CHAOS_DONE) {
        check_resources(e, fds, threads, name, cfg->free_running);
        if (chaos_finding(e)[0])
            out = CHAOS_FINDING;
    }
    r->outcome = out;
    r->finding = out != CHAOS_DONE;
    snprintf(r->text, sizeof r->text, "%s", chaos_finding(e));
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
    free(r->dfs_next);
    memset(r, 0, sizeof *r);
}
