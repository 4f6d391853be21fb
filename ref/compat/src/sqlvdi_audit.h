/* sqlvdi_audit.h: libsqlvdi's audit mode, which judges the client that uses it. On when
 * VDI_AUDIT_FILE names a file (findings are appended to it) or VDI_AUDIT=1 (to stderr);
 * vdichaos client sets it. Off, every hook is one predicted branch.
 *
 * A finding is one line "vdi-audit ORACLE RULE: detail", then the stack of the client's
 * call, each frame on a line of its own starting with "    #". The oracles:
 *   protocol         a call the contract forbids or a client must not need (the rules
 *                    below), whatever code the client then did with the answer;
 *   use-after-close  a touch of a buffer or ring of a set after its Close unmapped it: the
 *                    unmapped views stay reserved and inaccessible, and the report gives
 *                    the touching stack and the stack of the Close (the process then dies
 *                    of the SIGSEGV, as it would have without the audit, only surely).
 * Rules of the protocol oracle:
 *   complete-unknown    CompleteCommand of a command that is not delivered and uncompleted
 *                       on that device: completed twice, another device's, never delivered;
 *   complete-too-many   a data command completed with more bytes than it asked for;
 *   complete-after-close, call-after-close  a device used after its set's Close;
 *   concurrent-get      a second GetCommand on a device while one is running;
 *   deleted-object      a call on a deleted ClientVirtualDeviceSet or ClientVirtualDevice;
 *   close-holding       Close answered VD_E_OPEN with no abort seen: devices not at their end;
 *   never-closed        the process ends with a created set never closed;
 *   busy-loop           more than 1000 answers of VD_E_ABORT, or of VD_E_TIMEOUT to a
 *                       zero-timeout call, on one set within one second.
 * Shaking (VDI_AUDIT_SHAKE=SEED[:MAX_US], with the audit on): at every schedule point of
 * the library a quarter of the calls yield and an eighth sleep up to MAX_US (1000) us, as
 * SEED and the order the threads first reach a point decide, so the client's own races get
 * room; at exit a line "vdi-shake SEED:MAX_US: N points, ..." (not a finding). A value that
 * does not parse is reported as "vdi-audit usage shake" and nothing is shaken. */
#ifndef SQLVDI_AUDIT_H
#define SQLVDI_AUDIT_H

#include <cstdint>

#include "vdi/vdi.h"

#pragma GCC visibility push(hidden)
namespace sqlvdi_audit {

extern bool on; /* set once, before the first set object exists */

/* Reads the environment and installs the unmap guard; every set constructor calls it. */
void init();

/* A finding of the protocol oracle at the calling site (its stack is written after it). */
void report(const char *rule, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Per set: the name (for reports), an abort seen by the client, the busy-loop window. */
struct set_state {
    char name[VDI_MAX_NAME + 1];
    bool created, closed, aborted, reported_busy;
    uint64_t window_ms;
    unsigned window_count;
    void *created_at[16]; /* the stack of the Create, for never-closed */
    int ncreated_at;
    set_state *next_live; /* the list never-closed is judged from at exit */
};
void set_created(set_state *st, const char *name);
void set_closed(set_state *st);
void set_deleted(set_state *st);
/* Every answer of the set or its devices: VD_E_ABORT marks the abort; busy loops. */
void answered(set_state *st, int rc, bool zero_timeout);

/* Per device: the commands delivered and not yet completed, and GetCommands inside. */
struct device_state {
    VDC_Command *held[VDI_MAX_OUTSTANDING];
    unsigned nheld;
    unsigned getting; /* GetCommands inside, counted by get_begin / get_end */
};
void delivered(device_state *d, VDC_Command *cmd);
/* Around GetCommand: get_begin returns how many others were already inside, which tells a
 * second concurrent GetCommand from one that the set's Close overtook. */
unsigned get_begin(device_state *d);
void get_end(device_state *d);
/* Before the C call: finds the command among those held (false: not there). */
bool take(device_state *d, VDC_Command *cmd);

} // namespace sqlvdi_audit
#pragma GCC visibility pop

#endif /* SQLVDI_AUDIT_H */
