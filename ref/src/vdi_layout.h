/* vdi_layout.h: the shared-memory layout, one table a struct: each line is a field's
 * offset, type, name, array bound and writer, with what it holds. The *_shm structs of
 * vdi_internal.h are made from these tables, and so is everything else that walks the
 * layout field by field (fuzz_peer's forging table), so a field added here reaches them
 * all. The offsets are checked against the structs below: the object is shared between
 * processes, so a field that moves is a new VDI_SHM_VERSION. */
#ifndef VDI_LAYOUT_H
#define VDI_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "vdi/vdi.h"
#include "vdi/vdi_seams.h"

#define VDI_SHM_MAGIC 0x0031534849444356ull /* "VDCIHS1" */
#define VDI_SHM_VERSION 2u
#define VDI_RING 64u /* entries per ring = VDI_MAX_OUTSTANDING */
#define VDI_MAX_BUFFERS 4096u
#define VDI_AREA_ALIGN 65536u
#define VDI_NO_BUFFER UINT64_MAX

/* A line of a table: F(offset, type, name, array bound or nothing, writer).
 * Writers:
 *   CREATE   the client that creates the set, once, before it publishes the magic
 *   CLIENT   any client object of the set, the primary or a secondary
 *   PRIMARY  the primary client
 *   SERVER   the server
 *   BINDER   the side that binds the device (vdi_dev_bind, under dev_lock): either
 *   EITHER   either side
 *   FIELDS   a struct of its own, whose table says who writes each of its fields
 *   W        (in the table of a struct that lies inside another) the writer of the
 *            field that holds it */

// clang-format off

/* A command entry: the server writes it before it publishes cmd_head. */
#define VDI_CMD_SHM(F)                                                                             \
    F(  0, uint32_t, tag,       ,                SERVER) /* slot | generation << 8 */              \
    F(  4, int32_t,  code,      ,                SERVER)                                           \
    F(  8, int32_t,  size,      ,                SERVER)                                           \
    F( 12, uint32_t, reserved,  ,                SERVER)                                           \
    F( 16, uint64_t, position,  ,                SERVER)                                           \
    F( 24, uint64_t, buf_off,   ,                SERVER) /* the data's offset in the area,         \
                                                            VDI_NO_BUFFER for none */

/* A completion entry: the client writes it before it publishes cpl_head. */
#define VDI_CPL_SHM(F)                                                                             \
    F(  0, uint32_t, tag,       ,                CLIENT)                                           \
    F(  4, uint32_t, code,      ,                CLIENT)                                           \
    F(  8, uint32_t, bytes,     ,                CLIENT)                                           \
    F( 12, uint32_t, reserved,  ,                CLIENT)                                           \
    F( 16, uint64_t, position,  ,                CLIENT)

/* A device record. */
#define VDI_DEV_SHM(F)                                                                             \
    F(  0, uint32_t, bound,        ,             BINDER)  /* 0 free, 1 being named, 2 named        \
                                                             (release) */                          \
    F(  4, uint32_t, name_len,     ,             BINDER)  /* before bound = 2 */                   \
    F(  8, char,     name, [VDI_MAX_NAME + 1],   BINDER)  /* before bound = 2 */                   \
    F(136, uint32_t, client_owner, ,             CLIENT)  /* id of the client object holding it,   \
                                                             0 none */                             \
    F(140, uint32_t, server_open,  ,             SERVER)  /* 1 once opened */                      \
    F(144, uint32_t, server_closed, ,            SERVER)  /* 1 after close_device, published after \
                                                             cmd_head */                           \
    F(148, uint32_t, cmd_head,     ,             SERVER)  /* commands published (free-running) */  \
    F(152, uint32_t, cmd_tail,     ,             CLIENT)  /* commands taken (free-running) */      \
    F(156, uint32_t, cpl_head,     ,             CLIENT)  /* completions published */              \
    F(160, uint32_t, cpl_tail,     ,             SERVER)  /* completions taken */                  \
    F(164, uint32_t, cmd_seq,      ,             EITHER)  /* futex; bumped by the server (send,    \
                                                             close_device), by either on abort */  \
    F(168, vdi_cmd_shm, cmd, [VDI_RING],         SERVER)                                           \
    F(2216, vdi_cpl_shm, cpl, [VDI_RING],        CLIENT)

/* A live data zone, for buffer handles (vdi_server.c): off is the data zone's offset in
 * the area plus 1 (0: the slot is unused), gen the buffer's generation. */
#define VDI_BUF_SHM(F)                                                                             \
    F(  0, uint64_t, off,       ,                SERVER)                                           \
    F(  8, uint32_t, size,      ,                SERVER)                                           \
    F( 12, uint32_t, gen,       ,                SERVER)

/* The control block, at the start of the object; the buffer area follows at ctl_size. */
#define VDI_CTL_SHM(F)                                                                             \
    F(  0, uint64_t, magic,           ,          CREATE)  /* VDI_SHM_MAGIC, written last */        \
    F(  8, uint32_t, version,         ,          CREATE)                                           \
    F( 12, uint32_t, ctl_size,        ,          CREATE)  /* bytes before the area */              \
    F( 16, uint32_t, state_seq,       ,          EITHER)  /* futex; bumped on configuration and    \
                                                             abort */                              \
    F( 20, uint32_t, agent_seq,       ,          EITHER)  /* futex; bumped by the client on        \
                                                             completion, by either on abort */     \
    F( 24, uint32_t, aborted,         ,          EITHER)  /* 0 -> 1, never back */                 \
    F( 28, uint32_t, server_attached, ,          SERVER)  /* 0 -> VDI_CLAIM(pid) (claimed) -> 2    \
                                                             (server_id written); back to 0 when   \
                                                             an open gives the claim up */         \
    F( 32, uint32_t, configured,      ,          SERVER)  /* 1 once end_configuration succeeded */ \
    F( 36, uint32_t, primary_ready,   ,          PRIMARY) /* 1 after its first get_configuration */\
    F( 40, uint32_t, client_closed,   ,          PRIMARY) /* 1 at the start of its close */        \
    F( 44, uint32_t, server_closed,   ,          SERVER)  /* 1 at the start of its close */        \
    F( 48, uint32_t, normal_end,      ,          SERVER)  /* 1 once Normally Terminated */         \
    F( 52, uint32_t, dev_lock,        ,          EITHER)  /* futex mutex of the device table */    \
    F( 56, uint32_t, next_owner,      ,          CLIENT)  /* id counter of client objects */       \
    F( 60, uint32_t, area_size,       ,          SERVER)  /* bytes of the area backed and valid */ \
    F( 64, uint32_t, features_out,    ,          SERVER)  /* negotiated features (cfg.features     \
                                                             stays the client's) */                \
    F( 68, uint32_t, reserved0,       ,          CREATE)  /* zero */                               \
    F( 72, vdi_peer_id, client_id,    ,          CREATE)                                           \
    F( 88, vdi_peer_id, server_id,    ,          SERVER)  /* at open */                            \
    F(104, VDConfig, cfg,             ,          FIELDS)  /* see VDI_CONFIG_SHM */               \
    F(152, vdi_dev_shm, dev, [VDI_MAX_DEVICES],  FIELDS)  /* see VDI_DEV_SHM */                  \
    F(240280, vdi_buf_shm, buf, [VDI_MAX_BUFFERS], SERVER)

/* The public structs that lie inside the control block (vdi.h, vdi_seams.h): their
 * fields' writers, and their offsets checked like the others'. */
#define VDI_PEER_ID_SHM(F, W)                                                                      \
    F(  0, int32_t,  pid,        ,               W)                                                \
    F(  4, uint32_t, reserved,   ,               W)       /* zero */                               \
    F(  8, uint64_t, start_time, ,               W)       /* 0: known by its pid alone */

#define VDI_CONFIG_SHM(F, W)                                                                       \
    F(  0, uint32_t, deviceCount,           ,    CREATE)                                           \
    F(  4, uint32_t, features,              ,    CREATE)  /* what the client asked for */          \
    F(  8, uint32_t, prefixZoneSize,        ,    CREATE)                                           \
    F( 12, uint32_t, alignment,             ,    CREATE)                                           \
    F( 16, uint32_t, softFileMarkBlockSize, ,    CREATE)                                           \
    F( 20, uint32_t, EOMWarningSize,        ,    CREATE)                                           \
    F( 24, uint32_t, serverTimeOut,         ,    CREATE)                                           \
    F( 28, uint32_t, blockSize,             ,    SERVER)  /* at end_configuration */               \
    F( 32, uint32_t, maxIODepth,            ,    SERVER)                                           \
    F( 36, uint32_t, maxTransferSize,       ,    SERVER)                                           \
    F( 40, uint32_t, bufferAreaSize,        ,    SERVER)  /* and at each growth */

// clang-format on

/* ---- the structs, and the checks that they are what the tables say ---- */

#define VDI_SHM_FIELD(off, type, name, dims, writer) type name dims;
typedef struct vdi_cmd_shm {
    VDI_CMD_SHM(VDI_SHM_FIELD)
} vdi_cmd_shm;
typedef struct vdi_cpl_shm {
    VDI_CPL_SHM(VDI_SHM_FIELD)
} vdi_cpl_shm;
typedef struct vdi_dev_shm {
    VDI_DEV_SHM(VDI_SHM_FIELD)
} vdi_dev_shm;
typedef struct vdi_buf_shm {
    VDI_BUF_SHM(VDI_SHM_FIELD)
} vdi_buf_shm;
typedef struct vdi_ctl_shm {
    VDI_CTL_SHM(VDI_SHM_FIELD)
} vdi_ctl_shm;
#undef VDI_SHM_FIELD

/* Each field at its table's offset (VDI_SHM_AT_T names the struct being checked). */
#define VDI_SHM_AT(off, type, name, dims, writer)                                                  \
    _Static_assert(offsetof(VDI_SHM_AT_T, name) == (off), "a field of the shared layout moved");
/* The bytes of the fields of a public struct add up to the struct: none is missing. */
#define VDI_SHM_BYTES(off, type, name, dims, writer) +sizeof(((VDI_SHM_AT_T *)0)->name)

#define VDI_SHM_AT_T vdi_cmd_shm
VDI_CMD_SHM(VDI_SHM_AT)
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T vdi_cpl_shm
VDI_CPL_SHM(VDI_SHM_AT)
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T vdi_dev_shm
VDI_DEV_SHM(VDI_SHM_AT)
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T vdi_buf_shm
VDI_BUF_SHM(VDI_SHM_AT)
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T vdi_ctl_shm
VDI_CTL_SHM(VDI_SHM_AT)
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T vdi_peer_id
VDI_PEER_ID_SHM(VDI_SHM_AT, W)
_Static_assert(sizeof(vdi_peer_id) == 0 VDI_PEER_ID_SHM(VDI_SHM_BYTES, W),
               "a field of vdi_peer_id is missing from VDI_PEER_ID_SHM");
#undef VDI_SHM_AT_T
#define VDI_SHM_AT_T VDConfig
VDI_CONFIG_SHM(VDI_SHM_AT, W)
_Static_assert(sizeof(VDConfig) == 0 VDI_CONFIG_SHM(VDI_SHM_BYTES, W),
               "a field of VDConfig is missing from VDI_CONFIG_SHM");
#undef VDI_SHM_AT_T
#undef VDI_SHM_BYTES
#undef VDI_SHM_AT

/* Version 2's sizes (its offsets are the tables'). */
_Static_assert(sizeof(vdi_cmd_shm) == 32 && _Alignof(vdi_cmd_shm) == 8, "vdi_cmd_shm changed");
_Static_assert(sizeof(vdi_cpl_shm) == 24 && _Alignof(vdi_cpl_shm) == 8, "vdi_cpl_shm changed");
_Static_assert(sizeof(vdi_dev_shm) == 3752 && _Alignof(vdi_dev_shm) == 8, "vdi_dev_shm changed");
_Static_assert(sizeof(vdi_buf_shm) == 16 && _Alignof(vdi_buf_shm) == 8, "vdi_buf_shm changed");
_Static_assert(sizeof(vdi_ctl_shm) == 305816 && _Alignof(vdi_ctl_shm) == 8, "vdi_ctl_shm changed");

#endif
