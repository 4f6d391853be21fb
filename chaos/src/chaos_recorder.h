/* chaos_recorder.h: the history of a run, as the scenario's actors made it. While a
 * scenario runs under the controlled engine, every call of the VDI API its actors make is
 * recorded (the link wraps each vdi_* function: see chaos/CMakeLists.txt), with the moment
 * it entered and returned and what it returned; with the engine's notes on (a replay's
 * timeline), each call and its result is also a note. The recording does not depend on the
 * model oracle, which judges the history afterwards (chaos_linearizer.h). Internal to
 * chaos/. */
#ifndef CHAOS_RECORDER_H
#define CHAOS_RECORDER_H

#include <stdint.h>

#include "chaos/chaos.h"
#include "chaos_model.h"
#include "vdi/vdi.h"

#define H_MAX_CALLS 384
#define H_MAX_DEVS 64

typedef struct hcall {
    chaos_model_call k; /* op and plain arguments; handles are resolved at check time */
    const void *dev;    /* device handle passed */
    const void *cmd;    /* send: the VDS_Command; complete: the VDC_Command */
    const void *ptr;    /* free / is_shared: the buffer; send: cmd->buffer at entry */
    void *out;          /* what the call gave back: VDC_Command, buffer or device handle */
    char name[VDI_MAX_NAME + 1], instance[VDI_MAX_INSTANCE + 1];
    int has_name, has_instance, side; /* side: 1 server, 0 client */
    int rc, returned, any_rc;
    uint32_t entry, ret;
    int actor;
} hcall;

typedef struct hdev { /* a device handle, known from the open_device that gave it */
    const void *h;
    int side, obj;
    uint32_t since; /* the sequence number of that open_device's return */
    char name[VDI_MAX_NAME + 1];
} hdev;

typedef struct chaos_history {
    const char *undecidable; /* why the model cannot judge this history, or NULL */
    int n;
    hcall calls[H_MAX_CALLS];
    int nclients, nservers; /* the set objects the calls name, each side */
    hdev devs[H_MAX_DEVS];
    int ndevs;
    int nvds; /* the VDS_Commands sent */
} chaos_history;

/* Start recording the calls of this run (before the scenario's setup); the recorder
 * observes E (chaos_internal.h) for the death of a peer. */
void chaos_recorder_start(chaos_engine *e);
/* Recording ends: the history, which the caller may judge (and mark) until the stop. */
chaos_history *chaos_recorder_end(void);
/* Stop recording; nothing more is kept (before the scenario's cleanup). */
void chaos_recorder_stop(void);

/* A device handle's owner (side, object) and name as of a call that entered at BEFORE. */
const hdev *chaos_history_dev(const chaos_history *h, const void *handle, uint32_t before);

#endif /* CHAOS_RECORDER_H */
