/* t_compat_probe: a program written the way clients of the SQL Server on Linux VDI SDK are,
 * naming every public name of its vdi.h / vdierror.h: the three enumeration types and all
 * their constants, the structures and each field with its type, the error macros
 * (VD_ERROR, MAKE_HRESULT, SUCCEEDED, FAILED) and codes, the Win32 completion codes, and
 * every member function with its exact signature. A name our ref/compat/include lacks, or
 * spells or types differently, fails the build; a value that differs fails a
 * static_assert. The C view of the header is probed by t_compat_probe_c.c, linked in. */
#include "vdi.h"
#include "vdierror.h"

#include <cstddef>
#include <cstdio>
#include <type_traits>

extern "C" int t_compat_probe_c(void);

namespace {

/* The enumeration types are types: declare, assign, pass. */
constexpr VDFeatures features[] = {
    VDF_Removable,  VDF_Rewind,          VDF_Position,     VDF_SkipBlocks,      VDF_ReversePosition,
    VDF_Discard,    VDF_FileMarks,       VDF_RandomAccess, VDF_SnapshotPrepare, VDF_EnumFrozenFiles,
    VDF_VSSWriter,  VDF_RequestComplete, VDF_WriteMedia,   VDF_ReadMedia,       VDF_CompleteEnabled,
    VDF_LatchStats, VDF_LikePipe,        VDF_LikeTape,     VDF_LikeDisk};
constexpr unsigned long feature_values[] = {
    0x1,    0x2,    0x10,    0x20,    0x40,    0x80,         0x100, 0x200, 0x400, 0x800,
    0x1000, 0x2000, 0x10000, 0x20000, 0x40000, 0x80000000ul, 0,     0x173, 0x200};
static_assert(sizeof features / sizeof features[0] ==
                  sizeof feature_values / sizeof feature_values[0],
              "one value per feature");

constexpr VDCommands commands[] = {
    VDC_Read,          VDC_Write,       VDC_ClearError, VDC_Rewind,        VDC_WriteMark,
    VDC_SkipMarks,     VDC_SkipBlocks,  VDC_Load,       VDC_GetPosition,   VDC_SetPosition,
    VDC_Discard,       VDC_Flush,       VDC_Snapshot,   VDC_MountSnapshot, VDC_PrepareToFreeze,
    VDC_FileInfoBegin, VDC_FileInfoEnd, VDC_GetError,   VDC_Complete};

constexpr VDWhence whence[] = {VDC_Beginning, VDC_Current, VDC_End};

constexpr bool features_match() {
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        if (static_cast<unsigned long>(features[i]) != feature_values[i])
            return false;
    return true;
}
constexpr bool commands_match() { /* VDC_Read = 1, each the next */
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (static_cast<int>(commands[i]) != static_cast<int>(i) + 1)
            return false;
    return true;
}
static_assert(features_match(), "VDF_* values");
static_assert(commands_match(), "VDC_* command values");
static_assert(whence[0] == 0 && whence[1] == 1 && whence[2] == 2, "VDWhence values");
static_assert(VDF_LikeTape == (VDF_FileMarks | VDF_Removable | VDF_Rewind | VDF_Position |
                               VDF_SkipBlocks | VDF_ReversePosition),
              "VDF_LikeTape");

/* The error macros and codes, as constant expressions of type int. */
static_assert(std::is_same<decltype(VD_ERROR(1)), int>::value, "VD_ERROR yields an int");
static_assert(MAKE_HRESULT(SEVERITY_ERROR, 0x77, 4) == VD_E_ABORT, "MAKE_HRESULT");
static_assert(MAKE_HRESULT(SEVERITY_SUCCESS, 0, 0) == NOERROR, "MAKE_HRESULT success");
static_assert(FAILED(VD_E_ABORT) && !SUCCEEDED(VD_E_ABORT), "FAILED / SUCCEEDED");
static_assert(SUCCEEDED(NOERROR) && !FAILED(NOERROR), "NOERROR succeeds");
constexpr int codes[] = {VD_E_NOTOPEN,    VD_E_TIMEOUT,       VD_E_ABORT,        VD_E_SECURITY,
                         VD_E_INVALID,    VD_E_INSTANCE_NAME, VD_E_NOTSUPPORTED, VD_E_MEMORY,
                         VD_E_UNEXPECTED, VD_E_PROTOCOL,      VD_E_OPEN,         VD_E_CLOSE,
                         VD_E_BUSY};
constexpr int code_numbers[] = {2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15};
constexpr bool codes_match() {
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] != VD_ERROR(code_numbers[i]) ||
            static_cast<unsigned>(codes[i]) != 0x80770000u + static_cast<unsigned>(code_numbers[i]))
            return false;
    return true;
}
static_assert(codes_match(), "VD_E_* values");
static_assert(ERROR_SUCCESS == 0 && ERROR_ARENA_TRASHED == 7 && ERROR_HANDLE_EOF == 38 &&
                  ERROR_HANDLE_DISK_FULL == 39 && ERROR_NOT_SUPPORTED == 50 &&
                  ERROR_DISK_FULL == 112 && ERROR_OPERATION_ABORTED == 995,
              "Win32 completion codes");

/* Every field, with its type and place. */
#define T_FIELD(S, f, T, at)                                                                       \
    static_assert(std::is_same<decltype(S::f), T>::value && offsetof(S, f) == (at), #S "::" #f)
T_FIELD(VDConfig, deviceCount, uint32_t, 0);
T_FIELD(VDConfig, features, uint32_t, 4);
T_FIELD(VDConfig, prefixZoneSize, uint32_t, 8);
T_FIELD(VDConfig, alignment, uint32_t, 12);
T_FIELD(VDConfig, softFileMarkBlockSize, uint32_t, 16);
T_FIELD(VDConfig, EOMWarningSize, uint32_t, 20);
T_FIELD(VDConfig, serverTimeOut, uint32_t, 24);
T_FIELD(VDConfig, blockSize, uint32_t, 28);
T_FIELD(VDConfig, maxIODepth, uint32_t, 32);
T_FIELD(VDConfig, maxTransferSize, uint32_t, 36);
T_FIELD(VDConfig, bufferAreaSize, uint32_t, 40);
static_assert(sizeof(VDConfig) == 44, "VDConfig size");
T_FIELD(VDC_Command, commandCode, int32_t, 0);
T_FIELD(VDC_Command, size, int32_t, 4);
T_FIELD(VDC_Command, position, int64_t, 8);
T_FIELD(VDC_Command, buffer, uint8_t *, 16);
static_assert(sizeof(VDC_Command) == 24, "VDC_Command size");
T_FIELD(VDS_Command, commandCode, int32_t, 0);
T_FIELD(VDS_Command, size, int32_t, 4);
T_FIELD(VDS_Command, inPosition, int64_t, 8);
T_FIELD(VDS_Command, outPosition, int64_t, 16);
T_FIELD(VDS_Command, buffer, uint8_t *, 24);
T_FIELD(VDS_Command, completionRoutine, uint8_t *, 32);
T_FIELD(VDS_Command, completionContext, uint8_t *, 40);
T_FIELD(VDS_Command, completionCode, int32_t, 48);
T_FIELD(VDS_Command, bytesTransferred, int32_t, 52);
static_assert(sizeof(VDS_Command) == 56, "VDS_Command size");
#undef T_FIELD

/* The classes: default-constructible, destructible, one pointer (the SDK's size). */
static_assert(std::is_default_constructible<ClientVirtualDevice>::value &&
                  std::is_destructible<ClientVirtualDevice>::value,
              "ClientVirtualDevice");
static_assert(std::is_default_constructible<ClientVirtualDeviceSet>::value &&
                  std::is_destructible<ClientVirtualDeviceSet>::value,
              "ClientVirtualDeviceSet");
static_assert(sizeof(ClientVirtualDevice) == sizeof(void *) &&
                  sizeof(ClientVirtualDeviceSet) == sizeof(void *),
              "class sizes");

/* Every member function with the SDK's exact signature (a different one does not convert);
 * not const, so that checking them at run time is not a constant the compiler rejects. */
int (ClientVirtualDevice::*get_command)(time_t, VDC_Command **) = &ClientVirtualDevice::GetCommand;
int (ClientVirtualDevice::*complete_command)(VDC_Command *, int, unsigned long,
                                             int64_t) = &ClientVirtualDevice::CompleteCommand;
int (ClientVirtualDeviceSet::*create)(char *, VDConfig *) = &ClientVirtualDeviceSet::Create;
int (ClientVirtualDeviceSet::*get_configuration)(time_t, VDConfig *) =
    &ClientVirtualDeviceSet::GetConfiguration;
int (ClientVirtualDeviceSet::*open_device)(char *, ClientVirtualDevice **) =
    &ClientVirtualDeviceSet::OpenDevice;
int (ClientVirtualDeviceSet::*close_set)() = &ClientVirtualDeviceSet::Close;
int (ClientVirtualDeviceSet::*signal_abort)() = &ClientVirtualDeviceSet::SignalAbort;
int (ClientVirtualDeviceSet::*open_in_secondary)(char *) = &ClientVirtualDeviceSet::OpenInSecondary;
int (ClientVirtualDeviceSet::*get_buffer_handle)(uint8_t *, unsigned int *) =
    &ClientVirtualDeviceSet::GetBufferHandle;
int (ClientVirtualDeviceSet::*map_buffer_handle)(int, uint8_t **) =
    &ClientVirtualDeviceSet::MapBufferHandle;
void (ClientVirtualDeviceSet::*register_device_closed)() =
    &ClientVirtualDeviceSet::RegisterDeviceClosed;

/* Client code of the usual shapes: a switch on the command code, feature arithmetic. */
const char *command_name(const VDC_Command *cmd) {
    switch (cmd->commandCode) {
    case VDC_Read:
        return "read";
    case VDC_Write:
        return "write";
    case VDC_Flush:
        return "flush";
    case VDC_Complete:
        return "complete";
    default:
        return "other";
    }
}

} // namespace

int main() {
    VDConfig cfg = {};
    cfg.features = VDF_LikePipe | VDF_RequestComplete;
    VDFeatures disk = VDF_LikeDisk;
    VDWhence from = VDC_Beginning;
    uint8_t byte = 0;
    VDC_Command cmd = {VDC_Flush, static_cast<int32_t>(from), 0, &byte};
    bool ok = cfg.features == 0x2000u && disk == VDF_RandomAccess && command_name(&cmd)[0] == 'f' &&
              get_command && complete_command && create && get_configuration && open_device &&
              close_set && signal_abort && open_in_secondary && get_buffer_handle &&
              map_buffer_handle && register_device_closed && t_compat_probe_c() == 0;
    /* The calls resolve in libsqlvdi.so: one that needs no server answers as documented. */
    ClientVirtualDevice loose;
    VDC_Command *got = nullptr;
    ok = ok && FAILED(loose.GetCommand(0, &got)) && got == nullptr;
    printf("SDK surface probe: %s\n", ok ? "every name present" : "MISMATCH");
    return ok ? 0 : 1;
}
