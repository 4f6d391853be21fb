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

/* Feature bits: VDConfig.features. */
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
#define VDF_WriteMedia 0x10000u      /* set by the server: this is a backup */
#define VDF_ReadMedia 0x20000u       /* set by the server: this is a restore */
#define VDF_CompleteEnabled 0x40000u /* set by the server: VDC_Complete will come */
#define VDF_LatchStats 0x80000000u
#define VDF_LikePipe 0x0u
#define VDF_LikeTape 0x173u
#define VDF_LikeDisk 0x200u

/* Command codes: VDC_Command.commandCode. */
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

/* VDC_SetPosition: where the position counts from (carried in VDC_Command.size). */
#define VDC_Beginning 0
#define VDC_Current 1
#define VDC_End 2

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

#ifndef __cplusplus
typedef struct VDConfig VDConfig;
typedef struct VDC_Command VDC_Command;
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
