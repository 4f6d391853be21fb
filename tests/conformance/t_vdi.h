/* t_vdi.h: scaffolding shared by the conformance programs. It brings a client/server pair
 * of one process to any state of the VDI-SPEC section 3 tables, runs the completion agent
 * and client device loops on threads of their own, and keeps a ledger of every
 * completion routine call, so that each test states only the rule it proves. */
#ifndef T_VDI_H
#define T_VDI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "vdi/vdi.h"

#define T_MAX_DEV 64
#define T_LEDGER_MAX 4096

/* ---- the callback ledger ---------------------------------------------------------- */

typedef struct t_ledger t_ledger;
typedef struct t_cmd t_cmd;

/* One VDS_Command with what its completion routine saw. completionContext points back
 * here; the routine records, then runs the optional hook (which may call the server). */
struct t_cmd {
    VDS_Command cmd;
    t_ledger *ledger;
    int calls;            /* callbacks received (ledger lock) */
    uint32_t code;        /* completionCode at the last callback */
    uint32_t bytes;       /* bytesTransferred at the last callback */
    int64_t out_position; /* outPosition at the last callback */
    pthread_t thread;     /* thread of the last callback */
    int order;            /* ledger position of the last callback */
    int agent_returned;   /* the agent had returned when the callback ran (misuse) */
    void (*hook)(t_cmd *tc);
    void *hook_ctx;
};

struct t_ledger {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;                  /* routines entered */
    int finished;                 /* routines returned (hooks included) */
    t_cmd *order[T_LEDGER_MAX];   /* commands in callback order */
    uint32_t codes[T_LEDGER_MAX]; /* completion code of each callback, in order */
    atomic_int *agent_done;       /* optional: flags callbacks after the agent returned */
};

void t_ledger_init(t_ledger *l);
void t_ledger_destroy(t_ledger *l);
/* Block until at least n routines have returned. */
void t_ledger_wait(t_ledger *l, int n);
int t_ledger_finished(t_ledger *l);
/* Number of callbacks so far that carried this completion code. */
int t_ledger_count_code(t_ledger *l, uint32_t code);
/* Snapshot of one command's record, taken under the ledger lock. */
t_cmd t_cmd_snapshot(t_cmd *tc);

/* Fill a command: the routine is the ledger's, the context tc itself. */
void t_cmd_init(t_cmd *tc, t_ledger *l, int32_t code, int32_t size, int64_t position,
                uint8_t *buffer);
/* The ledger's completion routine (exposed for tests that build commands by hand). */
void t_ledger_routine(VDS_Command *cmd);
/* A routine that ignores the call, for probes. */
void t_ignore_routine(VDS_Command *cmd);

/* ---- a set of one process ------------------------------------------------------------ */

typedef struct t_set {
    char name[96];
    VDConfig cfg; /* the client's config (as filled in by get_configuration) */
    vdi_client_set *client;
    vdi_server_set *server;
    int ndev;
    char devname[T_MAX_DEV][16];
    vdi_client_device *cdev[T_MAX_DEV];
    vdi_server_device *sdev[T_MAX_DEV];
    uint32_t features;   /* server features for begin_configuration */
    uint32_t block_size; /* server block size */
    uint32_t max_transfer;
    uint32_t buf_size; /* request_buffers(buf_size, 0, buf_count) */
    uint32_t buf_count;
    pthread_t agent;
    int agent_started;
    atomic_int agent_done;
    atomic_int agent_rc;
    t_ledger ledger;
} t_set;

/* A client VDConfig for n devices with everything else neutral (no watchdog). */
void t_config_default(VDConfig *cfg, uint32_t ndev);

/* New client and server objects, a fresh name, the default geometry; creates nothing. */
void t_set_init(t_set *s, const char *stem, uint32_t ndev);
/* Each step asserts success (exit 1 with the failing call otherwise). */
void t_set_create(t_set *s);          /* client: DNE -> Configurable */
void t_set_server_open(t_set *s);     /* server: DNE -> Connected */
void t_set_server_begin(t_set *s);    /* server: -> Configurable */
void t_set_server_end(t_set *s);      /* request_buffers + end_configuration */
void t_set_client_config(t_set *s);   /* client: get_configuration -> Initializing */
void t_set_to_initializing(t_set *s); /* all of the above, both sides Initializing */
void t_set_open_devices(t_set *s);    /* every device on both sides */
void t_set_start_agent(t_set *s);     /* agent thread; returns once it is running */
void t_set_to_active(t_set *s);       /* initializing + devices + agent */
int t_set_join_agent(t_set *s);       /* join and return the agent's code */
/* The normal end: server closes every device, the client drains to VD_E_CLOSE, the agent
 * returns NOERROR, both close. Asserts each step. */
void t_set_finish(t_set *s);
/* The three parts of t_set_finish, for tests whose device loops run on threads. */
void t_set_close_devices(t_set *s);
void t_set_drain_client(t_set *s);
void t_set_end(t_set *s); /* agent returns NOERROR; both sides close NOERROR; free */
/* Teardown whatever the state: server close, agent join, client close, free. */
void t_set_teardown(t_set *s);
/* Wait until the server's agent is known to be running (send_command row 4 vs row 5). */
void t_wait_agent_running(vdi_server_device *dev);

/* Name of device i: device 0 is named after the set, the others "d<i>". */
const char *t_devname(t_set *s, int i);

/* Send a command through the ledger and assert the return code. */
int t_send(vdi_server_device *dev, t_cmd *tc);

/* ---- client device loops ---------------------------------------------------------- */

typedef struct t_worker {
    vdi_client_device *dev;
    uint32_t code;     /* completion code for every command */
    int hold;          /* 1: take commands but never complete them */
    long timeout_ms;   /* get_command timeout (VDI_INFINITE by default) */
    int final_rc;      /* the get_command code that ended the loop */
    int ncmds;         /* commands received */
    int last_complete; /* code of the last complete_command */
    uint64_t hash;     /* FNV-1a of the bytes of every Write, in order */
    uint8_t fill;      /* byte written into Read buffers */
    pthread_t th;
} t_worker;

/* Loop get_command / complete_command until get_command fails; completion code code,
 * bytes = size for data commands. */
void t_worker_start(t_worker *w, vdi_client_device *dev, uint32_t code);
int t_worker_join(t_worker *w);

/* ---- a gate that holds a thread (typically the agent inside a callback) -------------- */

typedef struct t_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside; /* threads that reached the gate */
    int open;
} t_gate;

void t_gate_init(t_gate *g);
/* Called by the held thread: announce arrival, block until opened. */
void t_gate_pass(t_gate *g);
/* Block until n threads reached the gate. */
void t_gate_wait_inside(t_gate *g, int n);
void t_gate_open(t_gate *g);
/* A t_cmd hook that passes the gate in hook_ctx. */
void t_gate_hook(t_cmd *tc);

/* ---- knowing that a thread is blocked inside the library ------------------------------- */

/* Installs wait/wake seams that do what the defaults do (a shared futex) and record which
 * threads are waiting, so a test can act only once a thread is truly blocked. Install
 * before the set is used and remove after it is gone (the table is process-wide). */
void t_waitspy_install(void);
void t_waitspy_remove(void);
/* Block until thread th is waiting inside the library (in a wait seam call). */
void t_waitspy_until_blocked(pthread_t th);

/* ---- environment probes ----------------------------------------------------------- */

/* Open file descriptors of this process. */
int t_fd_count(void);
/* Entries of /dev/shm whose name contains needle. */
int t_shm_count(const char *needle);
/* Path in /dev/shm of the first entry containing needle, or 0 if none. */
int t_shm_find(const char *needle, char *path, size_t len);

/* Pipes between processes: one byte (or one word) at a time; exit 1 on a broken pipe. */
void t_put(int fd, char c);
char t_get(int fd);
void t_put_u32(int fd, uint32_t v);
uint32_t t_get_u32(int fd);
/* Block forever (a child waiting to be killed). */
void t_park(void);
/* Wait for a child; returns its exit status, or 128 + signal. */
int t_wait_child(int pid);

/* A thread running fn(arg), joinable with t_join. */
pthread_t t_spawn(void *(*fn)(void *), void *arg);
void *t_join(pthread_t th);

/* Exit 1 with a message when rc is not want (scaffolding failures end the program). */
void t_must(int rc, int want, const char *what);

uint64_t t_fnv(uint64_t h, const uint8_t *p, size_t n);

/* Dispatch: run the case named by argv[1], or every case when none is named. */
typedef struct t_case {
    const char *name;
    void (*fn)(void);
} t_case;
int t_run_cases(int argc, char **argv, const t_case *cases, int ncases);

#endif /* T_VDI_H */
