/* vdi.h: the client interface of the SQL Server on Linux VDI SDK as vdichaos's
 * libsqlvdi.so implements it: the configuration and command structures, the feature bits
 * and command codes, and the two classes a backup application drives. Written for vdichaos
 * from the SDK's published interface (names, signatures, layouts); a program built
 * against either header links with this libsqlvdi.so: same class sizes, same symbols.
 *
 * Timeouts are milliseconds; a negative timeout waits forever. Methods return NOERROR (0)
 * or a VD_E_* code from vdierror.h. */
#ifndef SQLVDI_COMPAT_VDI_H
#define SQLVDI_COMPAT_VDI_H

#include <stdint.h>
#include <time.h>

#include "vdierror.h"

/* Inside libsqlvdi the reference's own header (vdi/vdi.h) is included first; it defines
 * these types and constants with the same names, values and layout. */
#ifndef VDI_VDI_H

/* Feature bits: VDConfig.features. Enumerations, as in the SDK, so that a client may name
 * the types (VDFeatures f = VDF_LikeDisk;). */
enum VDFeatures {
    VDF_Removable = 0x1,
    VDF_Rewind = 0x2,
    VDF_Position = 0x10,
    VDF_SkipBlocks = 0x20,
    VDF_ReversePosition = 0x40,
    VDF_Discard = 0x80,
    VDF_FileMarks = 0x100,
    VDF_RandomAccess = 0x200,
    VDF_SnapshotPrepare = 0x400,
    VDF_EnumFrozenFiles = 0x800,
    VDF_VSSWriter = 0x1000,
    VDF_RequestComplete = 0x2000,
    VDF_WriteMedia = 0x10000,      /* set by the server: this is a backup */
    VDF_ReadMedia = 0x20000,       /* set by the server: this is a restore */
    VDF_CompleteEnabled = 0x40000, /* set by the server: VDC_Complete will come */
#ifdef __cplusplus
    VDF_LatchStats = 0x80000000u,
#endif
    VDF_LikePipe = 0,
    VDF_LikeTape = VDF_FileMarks | VDF_Removable | VDF_Rewind | VDF_Position | VDF_SkipBlocks |
                   VDF_ReversePosition,
    VDF_LikeDisk = VDF_RandomAccess
};
#ifndef __cplusplus
#define VDF_LatchStats 0x80000000u /* C keeps enumerators within int */
#endif

/* Command codes: VDC_Command.commandCode. */
enum VDCommands {
    VDC_Read = 1,
    VDC_Write = 2,
    VDC_ClearError = 3,
    VDC_Rewind = 4,
    VDC_WriteMark = 5,
    VDC_SkipMarks = 6,
    VDC_SkipBlocks = 7,
    VDC_Load = 8,
    VDC_GetPosition = 9,
    VDC_SetPosition = 10,
    VDC_Discard = 11,
    VDC_Flush = 12,
    VDC_Snapshot = 13,
    VDC_MountSnapshot = 14,
    VDC_PrepareToFreeze = 15,
    VDC_FileInfoBegin = 16,
    VDC_FileInfoEnd = 17,
    VDC_GetError = 18,
    VDC_Complete = 19
};

/* VDC_SetPosition: where the position counts from (carried in VDC_Command.size). */
enum VDWhence { VDC_Beginning = 0, VDC_Current = 1, VDC_End = 2 };

/* The client fills the first seven fields before Create; GetConfiguration fills the rest
 * (and the negotiated features). 44 bytes, no padding. */
struct VDConfig {
    uint32_t deviceCount;
    uint32_t features;
    uint32_t prefixZoneSize;
    uint32_t alignment;
    uint32_t softFileMarkBlockSize;
    uint32_t EOMWarningSize;
    uint32_t serverTimeOut;
    uint32_t blockSize;
    uint32_t maxIODepth;
    uint32_t maxTransferSize;
    uint32_t bufferAreaSize;
};

/* A command as GetCommand hands it out: read-only for the client. size is the byte count
 * of a Read or Write; buffer points into the client's own view of the shared buffers. */
struct VDC_Command {
    int32_t commandCode;
    int32_t size;
    int64_t position;
    uint8_t *buffer;
};

/* The server's side of a command, as the SDK declares it (a client never fills one). */
struct VDS_Command {
    int32_t commandCode;
    int32_t size;
    int64_t inPosition;
    int64_t outPosition;
    uint8_t *buffer;
    uint8_t *completionRoutine;
    uint8_t *completionContext;
    int32_t completionCode;
    int32_t bytesTransferred;
};

#ifndef __cplusplus
typedef struct VDConfig VDConfig;
typedef struct VDC_Command VDC_Command;
typedef struct VDS_Command VDS_Command;
typedef enum VDFeatures VDFeatures;
typedef enum VDCommands VDCommands;
typedef enum VDWhence VDWhence;
#endif

#endif /* VDI_VDI_H */

#ifdef __cplusplus
extern "C" {

/* One data stream of a virtual device set, opened with ClientVirtualDeviceSet::OpenDevice.
 * Deleting it is optional; it may be deleted before or after the set's Close, never while
 * another thread is inside one of its calls. */
class ClientVirtualDevice {
  public:
    ClientVirtualDevice();
    ~ClientVirtualDevice();
    ClientVirtualDevice(const ClientVirtualDevice &) = delete;
    ClientVirtualDevice &operator=(const ClientVirtualDevice &) = delete;

    /* The next command from the server; VD_E_CLOSE at the normal end of the stream,
     * VD_E_TIMEOUT when timeOut ms passed, VD_E_ABORT once the set is aborted. */
    int GetCommand(time_t timeOut, VDC_Command **ppCmd);
    /* Reports the outcome of a command that GetCommand returned. */
    int CompleteCommand(VDC_Command *pCmd, int completionCode, unsigned long bytesTransferred,
                        int64_t position);

  private:
    friend class ClientVirtualDeviceSet;
    void *m_impl;
};

/* A virtual device set as the backup application (the client) sees it. */
class ClientVirtualDeviceSet {
  public:
    ClientVirtualDeviceSet();
    ~ClientVirtualDeviceSet();
    ClientVirtualDeviceSet(const ClientVirtualDeviceSet &) = delete;
    ClientVirtualDeviceSet &operator=(const ClientVirtualDeviceSet &) = delete;

    int Create(char *name, VDConfig *cfg);
    int GetConfiguration(time_t timeout, VDConfig *cfg);
    int OpenDevice(char *name, ClientVirtualDevice **ppVirtualDevice);
    int Close();
    int SignalAbort();
    int OpenInSecondary(char *setName);
    int GetBufferHandle(uint8_t *pBuffer, unsigned int *pBufferHandle);
    int MapBufferHandle(int dwBuffer, uint8_t **ppBuffer);
    void RegisterDeviceClosed();

  private:
    void *m_impl;
};

} /* extern "C" */
#endif /* __cplusplus */

#endif /* SQLVDI_COMPAT_VDI_H */
