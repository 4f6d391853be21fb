/* pool.h: runs of vdichaos client side by side (--jobs N). Each run is audit_run() in a
 * worker process of its own, so that runs which mostly wait (a pause or a stalled device
 * longer than the client's timeout) overlap; their results come back in the order the plans
 * were given, so the output and the findings are those of the same runs made one by one. */
#ifndef CHAOS_CLIENT_POOL_H
#define CHAOS_CLIENT_POOL_H
#include "audit.h"

/* Called once per plan, in the order of audit_pool_submit(): rc is audit_run()'s (0, or -1
 * when the run could not be made), r its result. */
typedef void (*audit_pool_done)(void *arg, const vdi_plan *p, int rc, const audit_result *r);

typedef struct audit_pool audit_pool;

/* A pool of up to jobs runs at once (1..AUDIT_POOL_MAX_JOBS) on c; NULL when out of memory. */
#define AUDIT_POOL_MAX_JOBS 64
audit_pool *audit_pool_new(audit_ctx *c, int jobs, audit_pool_done done, void *arg);
/* Starts plan p (copied) as the next run; first waits while jobs runs are going, and
 * delivers every run that ended. 0, or -1 when no worker could be started (printed). */
int audit_pool_submit(audit_pool *pl, const vdi_plan *p);
/* Waits for every run and delivers it. */
void audit_pool_drain(audit_pool *pl);
void audit_pool_free(audit_pool *pl);
#endif /* CHAOS_CLIENT_POOL_H */
