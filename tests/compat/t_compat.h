/* t_compat.h: the checking macros of tests/t_check.h for programs built against the SDK
 * surface only (ref/compat/include/vdi.h), which must not see the reference's C header.
 * A failed expectation prints where it was and what it saw; exit 77 is a skip. */
#ifndef T_COMPAT_H
#define T_COMPAT_H

#include <cstdio>
#include <cstdlib>

#include "vdi.h"

/* The name of a code, for messages. */
static inline const char *t_code_name(int rc) {
    switch (rc) {
    case NOERROR:
        return "NOERROR";
    case VD_E_TIMEOUT:
        return "VD_E_TIMEOUT";
    case VD_E_ABORT:
        return "VD_E_ABORT";
    case VD_E_INVALID:
        return "VD_E_INVALID";
    case VD_E_NOTSUPPORTED:
        return "VD_E_NOTSUPPORTED";
    case VD_E_MEMORY:
        return "VD_E_MEMORY";
    case VD_E_PROTOCOL:
        return "VD_E_PROTOCOL";
    case VD_E_OPEN:
        return "VD_E_OPEN";
    case VD_E_CLOSE:
        return "VD_E_CLOSE";
    case VD_E_BUSY:
        return "VD_E_BUSY";
    default:
        return "another code";
    }
}

#define T_CODE_NAME t_code_name
#include "../t_check.h"

#endif /* T_COMPAT_H */
