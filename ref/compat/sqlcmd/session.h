/* session.h: one BACKUP or RESTORE played as SQL Server plays it over VDI: open the set the
 * client created (named after the first VIRTUAL_DEVICE), configure it, open every device,
 * run the completion agent on a thread of its own and stream the image striped across the
 * devices, with the chaos knobs that make the server misbehave on purpose. */
#ifndef VDI_SQLCMD_SESSION_H
#define VDI_SQLCMD_SESSION_H

#include "plan.h"
#include "tsql.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

/* Each knob has an option and an environment variable (see vdi-sqlcmd --help). */
struct sqlcmd_knobs {
    long abort_after = -1; /* SignalAbort once this many commands completed */
    long close_after = -1; /* Close the set (devices still open) once this many completed */
    long delay_ms = 0;     /* before each command sent */
    long fail_at = -1;     /* take completion number fail_at as failed with fail_code */
    uint32_t fail_code = 0;
    /* DIE_WRITING: halfway through writing the restored image (its temporary file) */
    enum die_point {
        DIE_NONE,
        DIE_OPEN,
        DIE_CONFIGURED,
        DIE_COMMAND,
        DIE_END,
        DIE_WRITING
    } die_at = DIE_NONE;
    long die_command = 0; /* DIE_COMMAND: right after this many commands were sent */
    enum die_how { DIE_EXIT, DIE_ABORT, DIE_KILL, DIE_TERM } die_how = DIE_EXIT;
    int flushes = 1;         /* VDC_Flush per device at the end of a backup */
    int complete = -1;       /* VDC_Complete: -1 when negotiated, 0 never, 1 always */
    long timeout_ms = 60000; /* waiting for the set to exist, and for each completion */
    /* The faults the session plays: a plan's (--plan), and the knobs abort-after,
     * close-after, fail-command and die-at (but writing) as the same steps, so one
     * interpreter serves both (sqlcmd_knobs_to_faults). */
    std::vector<vdi_plan_fault> faults;
    uint32_t transfer[VDI_PLAN_MAX_DEVICES] = {}; /* a plan's data command size per device */
    uint8_t reverse[VDI_PLAN_MAX_DEVICES] = {};   /* a plan's order per device */
};

/* Appends the knobs' faults (abort-after, close-after, fail-command, die-at) to k->faults. */
void sqlcmd_knobs_to_faults(sqlcmd_knobs *k);

struct sqlcmd_config {
    std::string data_dir;
    uint64_t db_size = 0; /* size of a generated image; 0 derives it from the name */
    sqlcmd_knobs knobs;
};

/* Where messages go: stdout, one message at a time, shaped like sqlcmd's. */
class sqlcmd_output {
  public:
    explicit sqlcmd_output(std::string server) : server_(std::move(server)) {}
    void line(const std::string &text);
    void error(const tsql_error &e);

  private:
    std::string server_;
    std::mutex mu_;
};

/* Runs the statement; true when it succeeded. Every failure has been printed as a Msg
 * (the caller adds the final Msg 3013). */
/* What a session did, for the report (VDI_SQLCMD_REPORT). */
struct sqlcmd_result {
    long sent = 0, completed = 0;
};

bool sqlcmd_run(const tsql_statement &st, const sqlcmd_config &cfg, sqlcmd_output *out,
                sqlcmd_result *result);

#endif /* VDI_SQLCMD_SESSION_H */
