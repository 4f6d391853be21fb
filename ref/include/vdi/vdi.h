/* vdi.h: the public C API of the vdichaos reference Virtual Device Interface.
 * Names, codes and semantics are pinned by VDI-SPEC.md (sections 2 to 8); this header is
 * the only public surface of the vdiref library besides the seam table in vdi_seams.h. */
#ifndef VDI_VDI_H
#define VDI_VDI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Return codes (the 32-bit patterns of vdierror.h, as negative int) ---- */
#define NOERROR 0
#define VD_E_NOTOPEN ((int)0x80770002u)
#define VD_E_TIMEOUT ((int)0x80770003u)
#define VD_E_ABORT ((int)0x80770004u)
#define VD_E_SECURITY ((int)0x80770005u)
#define VD_E_INVALID ((int)0x80770006u)
#define VD_E_INSTANCE_NAME ((int)0x80770007u)
#define VD_E_NOTSUPPORTED ((int)0x80770009u)
#define VD_E_MEMORY ((int)0x8077000au)
#define VD_E_UNEXPECTED ((int)0x8077000bu)
#define VD_E_PROTOCOL ((int)0x8077000cu)
#define VD_E_OPEN ((int)0x8077000du)
#define VD_E_CLOSE ((int)0x8077000eu)
#define VD_E_BUSY ((int)0x8077000fu)
#define VD_E_QUEUE_FULL ((int)0x80770010u)
#define VD_E_IO_ERROR ((int)0x80770011u)

/* ---- Limits ---- */
#define VDI_INFINITE (-1L)
#define VDI_MAX_DEVICES 64
#define VDI_MAX_OUTSTANDING 64 /* commands in flight per device */
#define VDI_MAX_IO_DEPTH 4     /* maxIODepth as reported */
#define VDI_MAX_NAME 127       /* set and device names, bytes */
#define VDI_MAX_INSTANCE 16    /* instance names, bytes */
#define VDI_MAX_AREA (1u << 30)
#define VDI_MIN_BLOCK_SIZE 512u
#define VDI_MAX_BLOCK_SIZE 65536u
#define VDI_MAX_ALIGNMENT 65536u
#define VDI_TRANSFER_UNIT 65536u /* maxTransferSize is a non-zero multiple of this */

/* ---- Feature bits ---- */
#define VDF_Removable 0x1u
#define VDF_Rewind 0x2u
#define VDF_Position 0x10u
#define VDF_SkipBlocks 0x20u
#define VDF_ReversePosition 0x40u
#define VDF_Discard 0x80u
#define VDF_FileMarks 0x100u
#define VDF_RandomAccess 0x200u
#define VDF_SnapshotPrepare 0x400u
#define VDF_EnumFrozenFiles 0x800u
#define VDF_VSSWriter 0x1000u
#define VDF_RequestComplete 0x2000u
#define VDF_WriteMedia 0x10000u
#define VDF_ReadMedia 0x20000u
#define VDF_CompleteEnabled 0x40000u
#define VDF_LatchStats 0x80000000u
#define VDF_LikePipe 0x0u
#define VDF_LikeTape 0x173u
#define VDF_LikeDisk 0x200u
#define VDF_ClientRequestable (0x3FF3u | VDF_LatchStats)

/* ---- Command codes ---- */
#define VDC_Read 1
#define VDC_Write 2
#define VDC_ClearError 3
#define VDC_Rewind 4
#define VDC_WriteMark 5
#define VDC_SkipMarks 6
#define VDC_SkipBlocks 7
#define VDC_Load 8
#define VDC_GetPosition 9
#define VDC_SetPosition 10
#define VDC_Discard 11
#define VDC_Flush 12
#define VDC_Snapshot 13
#define VDC_MountSnapshot 14
#define VDC_PrepareToFreeze 15
#define VDC_FileInfoBegin 16
#define VDC_FileInfoEnd 17
#define VDC_GetError 18
#define VDC_Complete 19

/* SetPosition whence (carried in VDC_Command.size) */
#define VDC_Beginning 0
#define VDC_Current 1
#define VDC_End 2

/* ---- Win32 completion codes ---- */
#ifndef ERROR_SUCCESS
#define ERROR_SUCCESS 0u
#endif
#ifndef ERROR_INVALID_HANDLE
#define ERROR_INVALID_HANDLE 6u
#endif
#ifndef ERROR_HANDLE_EOF
#define ERROR_HANDLE_EOF 38u
#endif
#ifndef ERROR_NOT_SUPPORTED
#define ERROR_NOT_SUPPORTED 50u
#endif
#ifndef ERROR_INVALID_PARAMETER
#define ERROR_INVALID_PARAMETER 87u
#endif
#ifndef ERROR_DISK_FULL
#define ERROR_DISK_FULL 112u
#endif
#ifndef ERROR_OPERATION_ABORTED
#define ERROR_OPERATION_ABORTED 995u
#endif
#ifndef ERROR_END_OF_MEDIA
#define ERROR_END_OF_MEDIA 1100u
#endif
#ifndef ERROR_FILEMARK_DETECTED
#define ERROR_FILEMARK_DETECTED 1101u
#endif
#ifndef ERROR_NO_DATA_DETECTED
#define ERROR_NO_DATA_DETECTED 1104u
#endif
#ifndef ERROR_IO_DEVICE
#define ERROR_IO_DEVICE 1117u
#endif
#ifndef ERROR_EOM_OVERFLOW
#define ERROR_EOM_OVERFLOW 1129u
#endif
#ifndef ERROR_NO_SYSTEM_RESOURCES
#define ERROR_NO_SYSTEM_RESOURCES 1450u
#endif

/* ---- Structures (layout of the Linux SDK's vdi.h) ---- */
typedef struct VDConfig {
    uint32_t deviceCount;           /* client in */
    uint32_t features;              /* client in; server out (negotiated) */
    uint32_t prefixZoneSize;        /* client in */
    uint32_t alignment;             /* client in */
    uint32_t softFileMarkBlockSize; /* client in */
    uint32_t EOMWarningSize;        /* client in */
    uint32_t serverTimeOut;         /* client in: watchdog T in ms, 0 = off */
    uint32_t blockSize;             /* server out */
    uint32_t maxIODepth;            /* server out (always 4) */
    uint32_t maxTransferSize;       /* server out */
    uint32_t bufferAreaSize;        /* server out */
} VDConfig;

typedef struct VDC_Command {
    int32_t commandCode;
    int32_t size; /* bytes for Read/Write, a count, or the VDWhence for SetPosition */
    int64_t position;
    uint8_t *buffer; /* the client's own address of the data, or NULL */
} VDC_Command;

typedef struct VDS_Command VDS_Command;
struct VDS_Command {
    int32_t commandCode;
    int32_t size;
    int64_t inPosition;
    int64_t outPosition;
    uint8_t *buffer;
    void (*completionRoutine)(VDS_Command *cmd);
    void *completionContext;
    uint32_t completionCode;
    uint32_t bytesTransferred;
};

/* ---- Opaque handles ---- */
typedef struct vdi_client_set vdi_client_set;
typedef struct vdi_client_device vdi_client_device;
typedef struct vdi_server_set vdi_server_set;
typedef struct vdi_server_device vdi_server_device;

#if defined(__GNUC__) || defined(__clang__)
#define VDI_MUST_CHECK __attribute__((warn_unused_result))
#else
#define VDI_MUST_CHECK
#endif

const char *vdi_strerror(int code);

/* ---- Client side (the backup application) ---- */
vdi_client_set *vdi_client_set_new(void);
void vdi_client_set_free(vdi_client_set *set);
VDI_MUST_CHECK int vdi_client_set_create_ex(vdi_client_set *set, const char *instance,
                                            const char *name, VDConfig *cfg);
VDI_MUST_CHECK int vdi_client_set_create(vdi_client_set *set, const char *name, VDConfig *cfg);
VDI_MUST_CHECK int vdi_client_set_get_configuration(vdi_client_set *set, long timeout_ms,
                                                    VDConfig *cfg);
VDI_MUST_CHECK int vdi_client_set_open_device(vdi_client_set *set, const char *name,
                                              vdi_client_device **out);
int vdi_client_set_close(vdi_client_set *set);
int vdi_client_set_signal_abort(vdi_client_set *set);
VDI_MUST_CHECK int vdi_client_set_open_in_secondary_ex(vdi_client_set *set, const char *instance,
                                                       const char *name);
VDI_MUST_CHECK int vdi_client_set_open_in_secondary(vdi_client_set *set, const char *name);
VDI_MUST_CHECK int vdi_client_set_get_buffer_handle(vdi_client_set *set, uint8_t *buffer,
                                                    uint32_t *handle);
VDI_MUST_CHECK int vdi_client_set_map_buffer_handle(vdi_client_set *set, uint32_t handle,
                                                    uint8_t **buffer);
VDI_MUST_CHECK int vdi_client_device_get_command(vdi_client_device *dev, long timeout_ms,
                                                 VDC_Command **cmd);
VDI_MUST_CHECK int vdi_client_device_complete_command(vdi_client_device *dev, VDC_Command *cmd,
                                                      uint32_t completion_code,
                                                      uint32_t bytes_transferred,
                                                      uint64_t position);

/* ---- Server side (SQL Server's role) ---- */
vdi_server_set *vdi_server_set_new(void);
void vdi_server_set_free(vdi_server_set *set);
VDI_MUST_CHECK int vdi_server_set_open(vdi_server_set *set, const char *instance, const char *name);
VDI_MUST_CHECK int vdi_server_set_get_configuration(vdi_server_set *set, VDConfig *cfg);
VDI_MUST_CHECK int vdi_server_set_begin_configuration(vdi_server_set *set, uint32_t features,
                                                      uint32_t block_size, uint32_t alignment,
                                                      uint32_t max_transfer_size, long timeout_ms);
VDI_MUST_CHECK int vdi_server_set_request_buffers(vdi_server_set *set, uint32_t size,
                                                  uint32_t alignment, uint32_t count);
VDI_MUST_CHECK int vdi_server_set_query_available_buffers(vdi_server_set *set, uint32_t size,
                                                          uint32_t alignment, uint32_t *count);
VDI_MUST_CHECK int vdi_server_set_end_configuration(vdi_server_set *set);
int vdi_server_set_execute_completion_agent(vdi_server_set *set);
VDI_MUST_CHECK int vdi_server_set_open_device(vdi_server_set *set, const char *name,
                                              vdi_server_device **out);
VDI_MUST_CHECK int vdi_server_set_allocate_buffer(vdi_server_set *set, uint8_t **buffer,
                                                  uint32_t size, uint32_t alignment);
int vdi_server_set_free_buffer(vdi_server_set *set, uint8_t *buffer, uint32_t size);
int vdi_server_set_is_shared_buffer(vdi_server_set *set, const uint8_t *buffer);
int vdi_server_set_signal_abort(vdi_server_set *set);
int vdi_server_set_close(vdi_server_set *set);
int vdi_server_device_send_command(vdi_server_device *dev, VDS_Command *cmd);
int vdi_server_device_close(vdi_server_device *dev);

#ifdef __cplusplus
}
#endif

#endif /* VDI_VDI_H */
