/* audit.h: one run of vdichaos client: the client under test as its own process group,
 * our vdi-sqlcmd playing SQL Server from a plan (found on PATH as sqlcmd, or started here
 * with the statement), and the oracles that judge what the client did. */
#ifndef CHAOS_CLIENT_AUDIT_H
#define CHAOS_CLIENT_AUDIT_H

#include "plan.h"

#include <limits.h>
#include <stddef.h>

#define AUDIT_MAX_FINDINGS 6

typedef struct audit_ctx {
    char **argv; /* the client's command; "{set}" in an argument is the set name */
    int argc;
    const char *statement;    /* run by vdichaos for the client (a plan's statement wins) */
    const char *sqlcmd;       /* vdi-sqlcmd */
    const char *libdir;       /* the directory of our libsqlvdi.so, first on LD_LIBRARY_PATH */
    const char *schedlib;     /* libvdichaos_sched.so, preloaded into a plan's `schedule` runs */
    const char *sched_replay; /* --sched replay:FILE: every scheduled run takes FILE's
                                 decisions (a finding's .sched), whatever its plan's seed */
    const char *media;        /* the file the client presents as a complete backup, or NULL */
    char **restore_argv;      /* a command that restores the backup, or NULL (NULL-terminated) */
    long hang_ms;             /* a run longer than this is a hang */
    int stacks;               /* on a hang: 2 gdb, 1 /proc, 0 none */
    char work[PATH_MAX];      /* this session's directory: bin/sqlcmd, data/, run-N/ */
    unsigned long runs;
} audit_ctx;

typedef struct audit_finding {
    char oracle[24];   /* ends, truth, crash, sanitizer, leftover */
    char cls[64];      /* the kind within the oracle: success-after-failure, busy-loop, ... */
    char where[160];   /* top frames, when known: part of the signature */
    char detail[1200]; /* what was seen, for the report */
} audit_finding;

typedef struct audit_result {
    int exited, status, sig; /* the client's end */
    int server;              /* 1 the session succeeded, 0 failed, -1 the server died, -2 no
                                session was run */
    int restore;             /* the session was a restore */
    long sent, completed;    /* commands of the (last) session */
    double seconds;
    int sched; /* a `schedule` run: 1 fully controlled, 2 not fully (what the
                  scheduler could not control, in sched_note), 3 no report */
    char sched_note[160];
    unsigned long sched_steps; /* the steps the scheduler counted */
    char sched_trace[17];      /* its trace hash; the report (the decisions) is kept as
                                  WORK/schedules/TRACE.sched */
    int nfindings;
    audit_finding findings[AUDIT_MAX_FINDINGS];
} audit_result;

/* Makes the session directory and the sqlcmd link; 0, or -1 with a message printed. */
int audit_setup(audit_ctx *c);
/* Removes the session directory. */
void audit_cleanup(audit_ctx *c);
/* A restore audit's media: runs argv (a backup) once under p without its faults; 0 when
 * it succeeded, else -1 with the reason printed. */
int audit_prepare(audit_ctx *c, const vdi_plan *p, char **argv);
/* Runs the client once under plan p and judges it. 0, or -1 when the run could not be
 * made (a message is printed). */
int audit_run(audit_ctx *c, const vdi_plan *p, audit_result *r);

/* "oracle:cls[:where]": what findings are deduplicated by. */
void audit_signature(const audit_finding *f, char *buf, size_t cap);

/* Waits for a child to change state, at most ms (SIGCHLD blocked by the caller). */
void audit_wait_child(long ms);

#endif /* CHAOS_CLIENT_AUDIT_H */
