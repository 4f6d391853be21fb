/* chaos_session.c: the session a scenario runs: the set built with the real reference up to
 * Active (buffers allocated, commands filled in), the helpers the actors share (conditions,
 * virtual sleeps, calls that must succeed, a session broken by an injected fault), and its
 * end: closed and freed after a clean run, abandoned but reachable after a finding. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chaos_session.h"
#include "vdi/vdi_seams.h"

session chaos_session_state;

/* Objects of runs that ended in a finding (see session_cleanup). */
static void *abandoned[256] __attribute__((used));
static unsigned nabandoned;
/* LeakSanitizer's: an object (and what it reaches) left on purpose. */
void __lsan_ignore_object(const void *p) __attribute__((weak));

static void abandon(void *p) {
    if (!p)
        return;
    abandoned[nabandoned++ % 256] = p; /* reachable, for the last 256 ... */
    if (__lsan_ignore_object)
        __lsan_ignore_object(p); /* ... and ignored, for a process with more findings */
}

void session_signal(void) {
    ST(S.ev, LD(S.ev) + 1);
    chaos_wake(S.e, &S.ev);
}

void session_sleep(long ms) {
    uint32_t never = 0;
    chaos_wait(S.e, &never, 0u, ms);
}

/* An injected fault made a call of the run fail with a documented code: the session cannot
 * go on. Abort it from both sides (blocked threads return, the agent drains) and release
 * every actor waiting on a condition; the final oracles then check only what still holds. */
void session_break(void) {
    ST(S.broken, 1);
    if (S.server)
        (void)vdi_server_set_signal_abort(S.server);
    if (S.client)
        (void)vdi_client_set_signal_abort(S.client);
    session_signal();
}

/* A call of the run that must succeed: 1 when it did; a documented code under a fault plan
 * breaks the session, anything else is a finding. */
int session_ok(int rc, const char *what) {
    if (rc == NOERROR)
        return 1;
    if (LD(S.broken) && rc == VD_E_ABORT)
        return 0;
    if (!(chaos_faults_armed(S.e) && session_documented_fault(rc)))
        chaos_report(S.e, "contract", "%s returned %s", what, vdi_strerror(rc));
    session_break();
    return 0;
}

const char *session_dev_name(int d) {
    static const char *const names[MAXDEV] = {NULL, "dev1", "dev2"};
    return d == 0 ? S.name : names[d];
}

int session_new(chaos_engine *e, int end) {
    memset(&S, 0, sizeof S);
    S.e = e;
    chaos_ledger_init(&S.ledger, e, S.ledger_cmd, MAXCMD, CHAOS_LEDGER_COMPLETIONS);
    S.end = end;
    S.ndev = end == END_BACKUP_RESTORE ? MAXDEV : NDEV;
    static unsigned seq;
    snprintf(S.name, sizeof S.name, "chaos-%ld-%u", (long)getpid(), seq++);
    S.client = vdi_client_set_new();
    S.server = vdi_server_set_new();
    if (end == END_SECONDARY)
        S.secondary = vdi_client_set_new();
    if (!S.client || !S.server || (end == END_SECONDARY && !S.secondary)) {
        S.setup_rc = VD_E_MEMORY; /* a constructor answers NULL when memory is exhausted */
        return -1;
    }
    S.start_ms = chaos_now(e);
    return 0;
}

void session_fill_command(int i, int d, int code, uint8_t *buf) {
    S.dev_of[i] = d;
    S.cmd[i] = (VDS_Command){.commandCode = code,
                             .size = buf ? BUF : 0,
                             .inPosition = i,
                             .buffer = buf,
                             .completionRoutine = ledger_routine};
}

/* The standard commands: NCMD writes per device (command k * ndev + d), then a flush per
 * device; backup-restore: BLOCKS writes per device carrying its pattern. */
int session_fill_writes(void) {
    int nw = S.end == END_BACKUP_RESTORE ? BLOCKS : NCMD;
    for (int i = 0; i < S.ndev * nw; i++) {
        int d = i % S.ndev;
        STEP(vdi_server_set_allocate_buffer(S.server, &S.buf[i], BUF, 0));
        S.blk_of[i] = i / S.ndev;
        if (S.end == END_BACKUP_RESTORE)
            for (int j = 0; j < BUF; j++)
                S.buf[i][j] = ledger_pattern(d, S.blk_of[i], j);
        else
            memset(S.buf[i], i, BUF);
        session_fill_command(i, d, VDC_Write, S.buf[i]);
    }
    if (S.end != END_BACKUP_RESTORE)
        for (int d = 0; d < S.ndev; d++)
            session_fill_command(S.ndev * NCMD + d, d, VDC_Flush, NULL);
    return 0;
}

int session_setup_set(chaos_engine *e, int end) {
    if (session_new(e, end))
        return -1;
    const char *name = S.name;
    int nw = end == END_BACKUP_RESTORE ? BLOCKS : NCMD;
    VDConfig cfg = {.deviceCount = (uint32_t)S.ndev,
                    .serverTimeOut =
                        end == END_WATCHDOG || end == END_WATCHDOG_BUSY ? WATCHDOG_MS : 0};
    STEP(vdi_client_set_create(S.client, name, &cfg));
    STEP(vdi_server_set_open(S.server, NULL, name));
    STEP(vdi_server_set_begin_configuration(S.server, VDF_WriteMedia, BUF, 0, 65536, 0));
    STEP(vdi_server_set_request_buffers(S.server, BUF, 0, (uint32_t)(S.ndev * nw)));
    STEP(vdi_server_set_end_configuration(S.server));
    STEP(vdi_client_set_get_configuration(S.client, 0, &cfg));
    for (int d = 0; d < S.ndev; d++) {
        STEP(vdi_server_set_open_device(S.server, session_dev_name(d), &S.sdev[d]));
        if (end == END_SECONDARY && d == 1)
            continue; /* the secondary opens it during the run */
        STEP(vdi_client_set_open_device(S.client, session_dev_name(d), &S.cdev[d]));
    }
    if (session_fill_writes())
        return -1;
    S.ncmd = end == END_CLIENT_ABORT || end == END_SERVER_ABORT || end == END_OUT_OF_ORDER ||
                     end == END_CLIENT_DEATH || end == END_SEND_ABORT || end == END_SECONDARY ||
                     end == END_CLIENT_CLOSE || end == END_CLOSE_IN_LAST ||
                     end == END_CLOSE_HOLDING || end == END_WATCHDOG_BUSY
                 ? NALL
                 : NDEV * NCMD;
    if (end == END_BACKUP_RESTORE)
        S.ncmd = 2 * S.ndev * BLOCKS; /* the writes, then as many reads */
    return 0;
}

/* The codes an operating-system failure may turn into (VDI-SPEC 8.12). */
int session_documented_fault(int rc) {
    return rc == VD_E_MEMORY || rc == VD_E_BUSY || rc == VD_E_SECURITY || rc == VD_E_UNEXPECTED;
}

/* A setup that failed under an injected fault is a clean outcome when the code is one
 * the contract documents; the objects are released (and must leak nothing). */
int session_setup(chaos_engine *e, int end, int (*build)(chaos_engine *, int)) {
    if (build(e, end) == 0)
        return 0;
    S.setup_failed = 1;
    if (chaos_faults_armed(e) && session_documented_fault(S.setup_rc)) {
        vdi_server_set_free(S.server);
        vdi_client_set_free(S.client);
        vdi_client_set_free(S.secondary);
        S.client = NULL;
        S.server = NULL;
        S.secondary = NULL;
        return -1;
    }
    chaos_report(e, "setup", "could not build the set: %s", vdi_strerror(S.setup_rc));
    return -1;
}

void session_cleanup(int clean) {
    if (clean && !S.setup_failed) {
        if (S.end != END_CLOSE && S.end != END_CLOSE_IN_CALLBACK &&
            !(S.end == END_CLOSE_IN_LAST && LD(S.close_returned)))
            (void)vdi_server_set_close(S.server);
        (void)vdi_client_set_close(S.client);
        vdi_client_set_free(S.secondary);
        vdi_client_set_free(S.client);
        vdi_server_set_free(S.server);
    }
    /* After a finding, actors stopped mid-call: the objects cannot be closed and are
     * abandoned, but kept reachable so that LeakSanitizer reports only real leaks. */
    if (!clean && !S.setup_failed) {
        abandon(S.client);
        abandon(S.server);
        abandon(S.secondary);
        /* Nobody will close it: remove the set's name so nothing stays in /dev/shm (the
         * naming is the reference's, see ref/NOTES.md). */
        char path[160];
        if (vdi_seam_shm_name(path, sizeof path, NULL, S.name) == 0)
            chaos_shm_unlink(path); /* the engine's pooled object, or the system's */
    }
    memset(&S, 0, sizeof S);
}
