/* vdierror.h: the return codes of the SQL Server on Linux VDI client SDK and the Win32
 * completion codes its clients use, as libsqlvdi.so (vdichaos) returns and accepts them.
 * Written for vdichaos from the SDK's published interface: names and numbers only. */
#ifndef SQLVDI_COMPAT_VDIERROR_H
#define SQLVDI_COMPAT_VDIERROR_H

/* HRESULT-style codes, as the SDK forms them: an int whose sign bit is the severity. */
#ifndef SEVERITY_SUCCESS
#define SEVERITY_SUCCESS 0
#endif
#ifndef SEVERITY_ERROR
#define SEVERITY_ERROR 1
#endif
#ifndef MAKE_HRESULT
#define MAKE_HRESULT(sev, fac, code)                                                               \
    ((int)(((unsigned int)(sev) << 31) | ((unsigned int)(fac) << 16) | ((unsigned int)(code))))
#endif
#ifndef SUCCEEDED
#define SUCCEEDED(hr) (((int)(hr)) >= 0)
#endif
#ifndef FAILED
#define FAILED(hr) (((int)(hr)) < 0)
#endif
/* Every VDI error: facility 0x77, so 0x8077xxxx. */
#ifndef VD_ERROR
#define VD_ERROR(code) MAKE_HRESULT(SEVERITY_ERROR, 0x77, code)
#endif

#ifndef NOERROR
#define NOERROR 0
#endif

/* Inside libsqlvdi the reference's own header (vdi/vdi.h) is included first and defines
 * the same codes with the same values; the definitions below are for clients. */
#ifndef VDI_VDI_H

/* The methods return NOERROR or one of these. */
#define VD_E_NOTOPEN VD_ERROR(2)       /* 0x80770002: object not open */
#define VD_E_TIMEOUT VD_ERROR(3)       /* 0x80770003: the wait timed out */
#define VD_E_ABORT VD_ERROR(4)         /* 0x80770004: the set was aborted: only Close is useful */
#define VD_E_SECURITY VD_ERROR(5)      /* 0x80770005: shared object owned by someone else */
#define VD_E_INVALID VD_ERROR(6)       /* 0x80770006: bad parameter or unknown name */
#define VD_E_INSTANCE_NAME VD_ERROR(7) /* 0x80770007: bad instance name */
#define VD_E_NOTSUPPORTED VD_ERROR(9)  /* 0x80770009: configuration not supported */
#define VD_E_MEMORY VD_ERROR(10)       /* 0x8077000a: out of memory */
#define VD_E_UNEXPECTED VD_ERROR(11)   /* 0x8077000b: unexpected internal error */
#define VD_E_PROTOCOL VD_ERROR(12)     /* 0x8077000c: call not allowed in this state */
#define VD_E_OPEN VD_ERROR(13)  /* 0x8077000d: all devices open; or Close with devices open */
#define VD_E_CLOSE VD_ERROR(14) /* 0x8077000e: the server closed the device: end of stream */
#define VD_E_BUSY VD_ERROR(15)  /* 0x8077000f: the name is in use */
/* vdichaos's values for two codes the server side can see; a client never gets them. */
#define VD_E_QUEUE_FULL VD_ERROR(16)
#define VD_E_IO_ERROR VD_ERROR(17)

#endif /* VDI_VDI_H */

/* Win32 completion codes for CompleteCommand. */
#ifndef ERROR_SUCCESS
#define ERROR_SUCCESS 0
#endif
#ifndef ERROR_ARENA_TRASHED
#define ERROR_ARENA_TRASHED 7
#endif
#ifndef ERROR_HANDLE_EOF
#define ERROR_HANDLE_EOF 38
#endif
#ifndef ERROR_HANDLE_DISK_FULL
#define ERROR_HANDLE_DISK_FULL 39
#endif
#ifndef ERROR_NOT_SUPPORTED
#define ERROR_NOT_SUPPORTED 50
#endif
#ifndef ERROR_DISK_FULL
#define ERROR_DISK_FULL 112
#endif
#ifndef ERROR_OPERATION_ABORTED
#define ERROR_OPERATION_ABORTED 995
#endif

#endif /* SQLVDI_COMPAT_VDIERROR_H */
