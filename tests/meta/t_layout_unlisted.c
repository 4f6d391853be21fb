/* meta_layout_unlisted: a field added to the shared layout (ref/src/vdi_layout.h) must not
 * reach fuzz_peer's forging table, or slip past it, without a decision in
 * fuzz/fuzz_peer_fields.h (forged, or why not). This file expands the forging table from the
 * layout's tables with one field more in the buffer table; ctest compiles it and passes only
 * when the compiler names the missing decision. Built with T_LISTED (meta_layout_listed), the
 * field is left out and the same expansion must compile clean, so the failure is the check's. */
#include "../../fuzz/fuzz_peer_fields.h"

#ifdef T_LISTED
#define T_BUF_SHM(F) VDI_BUF_SHM(F)
#else
#define T_BUF_SHM(F) VDI_BUF_SHM(F) F(16, uint32_t, added, , SERVER)
#endif

extern const field t_fields[];
const field t_fields[] = {
    PEER_FIELDS(VDI_CTL_SHM, VDI_DEV_SHM, VDI_CMD_SHM, VDI_CPL_SHM, T_BUF_SHM)};
