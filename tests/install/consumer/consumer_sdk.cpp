// A program of another project on the installed SDK surface (libsqlvdi.so, <vdi.h>).
#include <cstdio>
#include <unistd.h>
#include <vdi.h>
#include <vdierror.h>

int main() {
    ClientVirtualDeviceSet set;
    VDConfig cfg = {};
    cfg.deviceCount = 1;
    char name[64];
    std::snprintf(name, sizeof name, "consumer-sdk-%ld", static_cast<long>(getpid()));
    int rc = set.Create(name, &cfg);
    std::printf("Create %s: 0x%08x\n", name, static_cast<unsigned>(rc));
    if (FAILED(rc))
        return 1;
    return SUCCEEDED(set.Close()) ? 0 : 1;
}
