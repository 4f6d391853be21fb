/* vdierror.h: the return codes of the SQL Server on Linux VDI client SDK and the Win32
 * completion codes its clients use, as libsqlvdi.so (vdichaos) returns and accepts them.
 * Written for vdichaos from the SDK's published interface: names and numbers only. */
#ifndef SQLVDI_COMPAT_VDIERROR_H
#define SQLVDI_COMPAT_VDIERROR_H

/* Inside libsqlvdi the reference's own header (vdi/vdi.h) is included first and defines
 * the same codes with the same values; the definitions below are for clients. */
#ifndef VDI_VDI_H

#ifndef NOERROR
#define NOERROR 0
#endif

/* The methods return 0 or one of these (the 32-bit patterns, as negative int). */
#define VD_E_NOTOPEN ((int)0x80770002u)       /* object not open */
#define VD_E_TIMEOUT ((int)0x80770003u)       /* the wait timed out */
#define VD_E_ABORT ((int)0x80770004u)         /* the set was aborted: only Close is useful */
#define VD_E_SECURITY ((int)0x80770005u)      /* shared object owned by someone else */
#define VD_E_INVALID ((int)0x80770006u)       /* bad parameter or unknown name */
#define VD_E_INSTANCE_NAME ((int)0x80770007u) /* bad instance name */
#define VD_E_NOTSUPPORTED ((int)0x80770009u)  /* configuration not supported */
#define VD_E_MEMORY ((int)0x8077000au)        /* out of memory */
#define VD_E_UNEXPECTED ((int)0x8077000bu)    /* unexpected internal error */
#define VD_E_PROTOCOL ((int)0x8077000cu)      /* call not allowed in this state */
#define VD_E_OPEN ((int)0x8077000du)          /* all devices open; or Close with devices open */
#define VD_E_CLOSE ((int)0x8077000eu)         /* the server closed the device: end of stream */
#define VD_E_BUSY ((int)0x8077000fu)          /* the name is in use */
/* vdichaos's values for two codes the server side can see; a client never gets them. */
#define VD_E_QUEUE_FULL ((int)0x80770010u)
#define VD_E_IO_ERROR ((int)0x80770011u)

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
