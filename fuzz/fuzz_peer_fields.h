/* fuzz_peer_fields.h: which fields of the shared layout fuzz_peer's hostile peer forges,
 * and why it leaves the others alone. The forging table is expanded from the layout's own
 * tables (ref/src/vdi_layout.h), and every field there must have its FORGE_<table>_<field>
 * here: a field added to the layout and not here fails to compile, naming
 * DO_FORGE_<table>_<field> (DO_IN_FORGE_... inside a struct; meta_layout_unlisted checks
 * that it does). corpora/fuzz_peer/gen_seeds.py reads the same two files. */
#ifndef FUZZ_PEER_FIELDS_H
#define FUZZ_PEER_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/src/vdi_layout.h"

enum { BY_SERVER = 1, BY_CLIENT = 2, BY_EITHER = 3 };
enum { W_CTL, W_DEV, W_CMD, W_CPL, W_BUF };

typedef struct field {
    const char *name;
    uint8_t where, writer;
    uint16_t off;
    uint8_t size;
    uint8_t waited; /* the abort word, or a sequence word a waiter sleeps on */
} field;

/* The decisions, in the layout's order:
 *   FORGE        the peer forges it
 *   FORGE_WAITED the same, and it is the abort word or a sequence word that the peer may
 *                roll back under a waiter (the reaper's lenient close, FUZZ_PEER_LENIENT)
 *   FIRST(why)   its first element is forged, the others not, for why
 *   NOT(why)     not forged, for why
 *   INSIDE(T)    a struct inside the control block: the fields of its table, FORGE_T_*
 *   ENTRIES      an array of structs forged entry by entry (the input picks the entry), by
 *                the fields of its own table */
#define ONCE "read once, at open, before any hostile write"
#define PAD "zero, read by nobody"

#define FORGE_CTL_magic NOT(ONCE)
#define FORGE_CTL_version NOT(ONCE)
#define FORGE_CTL_ctl_size NOT(ONCE)
#define FORGE_CTL_state_seq FORGE_WAITED
#define FORGE_CTL_agent_seq FORGE_WAITED
#define FORGE_CTL_aborted FORGE_WAITED
#define FORGE_CTL_server_attached FORGE
#define FORGE_CTL_configured FORGE
#define FORGE_CTL_primary_ready FORGE
#define FORGE_CTL_client_closed FORGE
#define FORGE_CTL_server_closed FORGE
#define FORGE_CTL_normal_end FORGE
#define FORGE_CTL_dev_lock                                                                         \
    NOT("a live peer that holds the device-table lock forever stalls open_device, a known gap "    \
        "of the reference (ref/NOTES.md; a peer that dies holding it is noticed)")
#define FORGE_CTL_next_owner FORGE
#define FORGE_CTL_area_size FORGE
#define FORGE_CTL_features_out FORGE
#define FORGE_CTL_reserved0 NOT(PAD)
#define FORGE_CTL_client_id INSIDE(ID)
#define FORGE_CTL_server_id INSIDE(ID)
#define FORGE_CTL_cfg INSIDE(CFG)
#define FORGE_CTL_dev ENTRIES
#define FORGE_CTL_buf ENTRIES

/* An identity is read whole, once, and kept privately: a forged pid stands for it. */
#define FORGE_ID_pid FORGE
#define FORGE_ID_reserved NOT(PAD)
#define FORGE_ID_start_time NOT("read with the pid, as one identity; a forged pid stands for both")

#define FORGE_CFG_deviceCount FORGE
#define FORGE_CFG_features FORGE
#define FORGE_CFG_prefixZoneSize FORGE
#define FORGE_CFG_alignment FORGE
#define FORGE_CFG_softFileMarkBlockSize NOT("passed on by get_configuration, acted on by nobody")
#define FORGE_CFG_EOMWarningSize NOT("passed on by get_configuration, acted on by nobody")
#define FORGE_CFG_serverTimeOut FORGE
#define FORGE_CFG_blockSize FORGE
#define FORGE_CFG_maxIODepth FORGE
#define FORGE_CFG_maxTransferSize FORGE
#define FORGE_CFG_bufferAreaSize FORGE

#define FORGE_DEV_bound FORGE
#define FORGE_DEV_name_len FORGE
#define FORGE_DEV_name FIRST("compared whole with name_len: its first byte stands for the rest")
#define FORGE_DEV_client_owner FORGE
#define FORGE_DEV_server_open FORGE
#define FORGE_DEV_server_closed FORGE
#define FORGE_DEV_cmd_head FORGE
#define FORGE_DEV_cmd_tail FORGE
#define FORGE_DEV_cpl_head FORGE
#define FORGE_DEV_cpl_tail FORGE
#define FORGE_DEV_cmd_seq FORGE_WAITED
#define FORGE_DEV_cmd ENTRIES
#define FORGE_DEV_cpl ENTRIES

#define FORGE_CMD_tag FORGE
#define FORGE_CMD_code FORGE
#define FORGE_CMD_size FORGE
#define FORGE_CMD_reserved NOT(PAD)
#define FORGE_CMD_position FORGE
#define FORGE_CMD_buf_off FORGE

#define FORGE_CPL_tag FORGE
#define FORGE_CPL_code FORGE
#define FORGE_CPL_bytes FORGE
#define FORGE_CPL_reserved NOT(PAD)
#define FORGE_CPL_position FORGE

#define FORGE_BUF_off FORGE
#define FORGE_BUF_size FORGE
#define FORGE_BUF_gen FORGE

/* ---- the expansion: a decision's name is pasted onto DO_ (or DO_IN_ inside a struct),
 * which makes the entry or drops the field. ---- */

/* The peer's side of a layout writer: whose fields a mode lets it forge. */
#define BY_OF_CREATE BY_CLIENT
#define BY_OF_CLIENT BY_CLIENT
#define BY_OF_PRIMARY BY_CLIENT
#define BY_OF_SERVER BY_SERVER
#define BY_OF_BINDER BY_EITHER
#define BY_OF_EITHER BY_EITHER

#define PEER_ENTRY(label, where, st, path, w, waited_)                                             \
    {label,  where, BY_OF_##w, (uint16_t)offsetof(st, path), (uint8_t)sizeof(((st *)0)->path),     \
     waited_},

#define DECIDE(d, ...) DECIDE_(d, __VA_ARGS__)
#define DECIDE_(d, ...) DO_##d(__VA_ARGS__)
#define DO_FORGE(pre, where, st, m, w) PEER_ENTRY(pre #m, where, st, m, w, 0)
#define DO_FORGE_WAITED(pre, where, st, m, w) PEER_ENTRY(pre #m, where, st, m, w, 1)
#define DO_FIRST(why) DO_FIRST_
#define DO_FIRST_(pre, where, st, m, w) PEER_ENTRY(pre #m "[0]", where, st, m[0], w, 0)
#define DO_NOT(why) DO_DROP_
#define DO_DROP_(...)
#define DO_ENTRIES(...)
#define DO_INSIDE(T) DO_INSIDE_##T
#define DO_INSIDE_ID(pre, where, st, m, w) VDI_PEER_ID_SHM(IN_##m, w)
#define DO_INSIDE_CFG(pre, where, st, m, w) VDI_CONFIG_SHM(IN_##m, w)

/* A field of a struct inside the control block, at the path m.f (not nested further). */
#define DECIDE_IN(d, ...) DECIDE_IN_(d, __VA_ARGS__)
#define DECIDE_IN_(d, ...) DO_IN_##d(__VA_ARGS__)
#define DO_IN_FORGE(outer, f, w) PEER_ENTRY(#outer "." #f, W_CTL, vdi_ctl_shm, outer.f, w, 0)
#define DO_IN_NOT(why) DO_DROP_
#define IN_client_id(off, type, f, dims, w) DECIDE_IN(FORGE_ID_##f, client_id, f, w)
#define IN_server_id(off, type, f, dims, w) DECIDE_IN(FORGE_ID_##f, server_id, f, w)
#define IN_cfg(off, type, f, dims, w) DECIDE_IN(FORGE_CFG_##f, cfg, f, w)

#define PEER_CTL(off, type, m, dims, w) DECIDE(FORGE_CTL_##m, "", W_CTL, vdi_ctl_shm, m, w)
#define PEER_DEV(off, type, m, dims, w) DECIDE(FORGE_DEV_##m, "", W_DEV, vdi_dev_shm, m, w)
#define PEER_CMD(off, type, m, dims, w) DECIDE(FORGE_CMD_##m, "cmd.", W_CMD, vdi_cmd_shm, m, w)
#define PEER_CPL(off, type, m, dims, w) DECIDE(FORGE_CPL_##m, "cpl.", W_CPL, vdi_cpl_shm, m, w)
#define PEER_BUF(off, type, m, dims, w) DECIDE(FORGE_BUF_##m, "buf.", W_BUF, vdi_buf_shm, m, w)

/* The forging table's entries, from the layout's tables (fuzz_peer passes vdi_layout.h's;
 * meta_layout_unlisted, one with a field too many). */
#define PEER_FIELDS(ctl, dev, cmd, cpl, buf)                                                       \
    ctl(PEER_CTL) dev(PEER_DEV) cmd(PEER_CMD) cpl(PEER_CPL) buf(PEER_BUF)

#endif
