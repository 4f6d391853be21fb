/* t_compat_probe_c: the C view of ref/compat/include/vdi.h (the structures, the
 * enumeration types and constants, the error macros), compiled as C11 so that a C program
 * including the header builds warning-free; the classes are C++ only. */
#include "vdi.h"

#include <stddef.h>

int t_compat_probe_c(void);

_Static_assert(sizeof(VDConfig) == 44 && offsetof(VDConfig, bufferAreaSize) == 40, "VDConfig");
_Static_assert(sizeof(VDC_Command) == 24 && offsetof(VDC_Command, buffer) == 16, "VDC_Command");
_Static_assert(sizeof(VDS_Command) == 56 && offsetof(VDS_Command, bytesTransferred) == 52,
               "VDS_Command");
_Static_assert(VD_E_CLOSE == VD_ERROR(14) && FAILED(VD_E_CLOSE) && SUCCEEDED(NOERROR),
               "error macros");
_Static_assert(VDF_LatchStats == 0x80000000u && VDF_LikeTape == 0x173 && VDC_Complete == 19 &&
                   VDC_End == 2,
               "constants");

int t_compat_probe_c(void) {
    VDFeatures f = VDF_LikeDisk;
    VDCommands c = VDC_Write;
    VDWhence w = VDC_Current;
    VDConfig cfg = {0};
    cfg.features = (uint32_t)f | VDF_LatchStats;
    return cfg.features == (0x200u | 0x80000000u) && c == 2 && w == 1 ? 0 : 1;
}
