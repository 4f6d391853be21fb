/* t_compat_abi: what a program compiled against the SDK's own vdi.h relies on when it
 * links with our libsqlvdi.so: the classes are one pointer each (the caller allocates
 * them), the structures have the SDK's layout, the codes their values, and every member
 * function resolves. Then the calls that need no server behave as the contract says:
 * a GetConfiguration that times out, the state errors, SignalAbort, Close. */
#include "t_compat.h"

#include <cstddef>
#include <cstring>
#include <string>
#include <unistd.h>

static_assert(sizeof(ClientVirtualDevice) == sizeof(void *), "one opaque pointer");
static_assert(sizeof(ClientVirtualDeviceSet) == sizeof(void *), "one opaque pointer");
static_assert(sizeof(VDConfig) == 44, "11 x uint32_t");
static_assert(offsetof(VDConfig, serverTimeOut) == 24 && offsetof(VDConfig, blockSize) == 28 &&
                  offsetof(VDConfig, bufferAreaSize) == 40,
              "VDConfig layout");
static_assert(sizeof(VDC_Command) == 24 && offsetof(VDC_Command, size) == 4 &&
                  offsetof(VDC_Command, position) == 8 && offsetof(VDC_Command, buffer) == 16,
              "VDC_Command layout");

/* Taking every member's address makes the link fail if libsqlvdi.so lacks one. */
static void expect_members_resolve() {
    int (ClientVirtualDevice::*get)(time_t, VDC_Command **) = &ClientVirtualDevice::GetCommand;
    int (ClientVirtualDevice::*done)(VDC_Command *, int, unsigned long, int64_t) =
        &ClientVirtualDevice::CompleteCommand;
    int (ClientVirtualDeviceSet::*create)(char *, VDConfig *) = &ClientVirtualDeviceSet::Create;
    int (ClientVirtualDeviceSet::*cfg)(time_t, VDConfig *) =
        &ClientVirtualDeviceSet::GetConfiguration;
    int (ClientVirtualDeviceSet::*open)(char *, ClientVirtualDevice **) =
        &ClientVirtualDeviceSet::OpenDevice;
    int (ClientVirtualDeviceSet::*secondary)(char *) = &ClientVirtualDeviceSet::OpenInSecondary;
    int (ClientVirtualDeviceSet::*handle)(uint8_t *, unsigned int *) =
        &ClientVirtualDeviceSet::GetBufferHandle;
    int (ClientVirtualDeviceSet::*map)(int, uint8_t **) = &ClientVirtualDeviceSet::MapBufferHandle;
    void (ClientVirtualDeviceSet::*closed)() = &ClientVirtualDeviceSet::RegisterDeviceClosed;
    T_EXPECT(get && done && create && cfg && open && secondary && handle && map && closed);
}

static void expect_values() {
    T_EXPECT_EQ(VD_E_TIMEOUT, (int)0x80770003u);
    T_EXPECT_EQ(VD_E_ABORT, (int)0x80770004u);
    T_EXPECT_EQ(VD_E_INVALID, (int)0x80770006u);
    T_EXPECT_EQ(VD_E_PROTOCOL, (int)0x8077000cu);
    T_EXPECT_EQ(VD_E_CLOSE, (int)0x8077000eu);
    T_EXPECT_EQ(VD_E_BUSY, (int)0x8077000fu);
    T_EXPECT(VD_E_ABORT < 0);
    T_EXPECT_EQ(ERROR_SUCCESS, 0);
    T_EXPECT_EQ(ERROR_ARENA_TRASHED, 7);
    T_EXPECT_EQ(ERROR_HANDLE_EOF, 38);
    T_EXPECT_EQ(ERROR_HANDLE_DISK_FULL, 39);
    T_EXPECT_EQ(ERROR_NOT_SUPPORTED, 50);
    T_EXPECT_EQ(ERROR_DISK_FULL, 112);
    T_EXPECT_EQ(ERROR_OPERATION_ABORTED, 995);
    T_EXPECT_EQ(VDC_Read, 1);
    T_EXPECT_EQ(VDC_Write, 2);
    T_EXPECT_EQ(VDC_Flush, 12);
    T_EXPECT_EQ(VDC_Complete, 19);
    T_EXPECT_EQ(VDF_RequestComplete, 0x2000u);
}

static void expect_without_server() {
    std::string name = "compat-abi-" + std::to_string(static_cast<long>(getpid()));
    char set_name[96];
    snprintf(set_name, sizeof set_name, "%s", name.c_str());
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = 1;

    ClientVirtualDeviceSet vds;
    T_EXPECT_CODE(vds.Close(), VD_E_PROTOCOL); /* never created */
    T_EXPECT_OK(vds.Create(set_name, &cfg));
    T_EXPECT_CODE(vds.Create(set_name, &cfg), VD_E_PROTOCOL);
    T_EXPECT_CODE(vds.GetConfiguration(0, &cfg), VD_E_TIMEOUT); /* no server: it polls */
    T_EXPECT_CODE(vds.GetConfiguration(20, &cfg), VD_E_TIMEOUT);
    ClientVirtualDevice *dev = reinterpret_cast<ClientVirtualDevice *>(&cfg); /* overwritten */
    T_EXPECT_CODE(vds.OpenDevice(set_name, &dev), VD_E_PROTOCOL); /* not configured yet */
    T_EXPECT(dev == nullptr);
    T_EXPECT_CODE(vds.OpenDevice(set_name, nullptr), VD_E_INVALID);
    vds.RegisterDeviceClosed();
    T_EXPECT_OK(vds.SignalAbort());
    T_EXPECT_CODE(vds.GetConfiguration(-1, &cfg), VD_E_ABORT); /* infinite, but aborted */
    T_EXPECT_OK(vds.Close());
    T_EXPECT_OK(vds.Create(set_name, &cfg)); /* the object may create again after Close */
    T_EXPECT_OK(vds.Close());

    /* A device object nobody opened answers, without crashing. */
    ClientVirtualDevice loose;
    VDC_Command *cmd = nullptr;
    T_EXPECT_CODE(loose.GetCommand(0, &cmd), VD_E_PROTOCOL);
    T_EXPECT(cmd == nullptr);

    /* Bad configuration: the reference's checks come through unchanged. */
    cfg.deviceCount = 65;
    ClientVirtualDeviceSet *heap = new ClientVirtualDeviceSet();
    T_EXPECT_CODE(heap->Create(set_name, &cfg), VD_E_NOTSUPPORTED);
    delete heap; /* never created: deleting is fine */
}

int main() {
    expect_members_resolve();
    expect_values();
    expect_without_server();
    return t_done();
}
