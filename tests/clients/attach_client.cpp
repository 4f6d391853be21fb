/* attach_client.cpp: a VDI client whose statement someone else runs (a scheduler, a DBA's
 * job): it creates the set under the name it is given, serves every device on a thread of
 * its own and never starts sqlcmd. It knows the backup succeeded only from the devices:
 * every one ended with VD_E_CLOSE. The backup goes to MEDIA.partial, renamed to MEDIA on
 * success. Built correct, and with BUG_EXIT0_AFTER_ABORT (any end of a device counts as
 * the normal one) for the gallery.
 *
 * usage: attach-client SET MEDIA [DEVICES] */
#include "vdi.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct stream {
    std::string name, file;
    ClientVirtualDevice *dev = nullptr;
    int fd = -1;
    int end = NOERROR;
};

void serve(stream *s) {
    for (;;) {
        VDC_Command *cmd = nullptr;
        int rc = s->dev->GetCommand(-1, &cmd);
        if (rc == NOERROR) {
            unsigned long done = 0;
            int code = ERROR_SUCCESS;
            size_t size = static_cast<size_t>(cmd->size);
            if (cmd->commandCode == VDC_Write) {
                ssize_t n = pwrite(s->fd, cmd->buffer, size, static_cast<off_t>(cmd->position));
                done = n > 0 ? static_cast<unsigned long>(n) : 0;
                code = done == size ? ERROR_SUCCESS : ERROR_DISK_FULL;
            } else if (cmd->commandCode == VDC_Read) {
                code = ERROR_NOT_SUPPORTED; /* this client only backs up */
            }
            rc = s->dev->CompleteCommand(cmd, code, done, cmd->position);
        }
        if (rc != NOERROR) {
#if defined(BUG_EXIT0_AFTER_ABORT)
            rc = VD_E_CLOSE; /* BUG: the stream ended, so it is complete */
#endif
            s->end = rc;
            return;
        }
    }
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s SET MEDIA [DEVICES]\n", argv[0]);
        return 2;
    }
    int ndev = argc == 4 ? atoi(argv[3]) : 1;
    if (ndev < 1 || ndev > 64)
        return 2;
    std::string set = argv[1], media = argv[2];
    std::vector<stream> streams(static_cast<size_t>(ndev));
    for (int i = 0; i < ndev; i++) {
        stream &s = streams[static_cast<size_t>(i)];
        s.name = i == 0 ? set : set + "_" + std::to_string(i);
        s.file = (i == 0 ? media : media + "." + std::to_string(i)) + ".partial";
        s.fd = open(s.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (s.fd < 0)
            return 1;
    }
    ClientVirtualDeviceSet vds;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = static_cast<uint32_t>(ndev);
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    bool ok = vds.Create(name.data(), &cfg) == NOERROR;
    ok = ok && vds.GetConfiguration(30000, &cfg) == NOERROR;
    for (auto &s : streams) {
        std::vector<char> dn(s.name.begin(), s.name.end());
        dn.push_back('\0');
        if (ok && vds.OpenDevice(dn.data(), &s.dev) != NOERROR) {
            ok = false;
            vds.SignalAbort();
        }
    }
    std::vector<std::thread> threads;
    for (auto &s : streams)
        if (s.dev)
            threads.emplace_back(serve, &s);
    for (auto &t : threads)
        t.join();
    for (auto &s : streams) {
        ok = ok && s.dev && s.end == VD_E_CLOSE;
        close(s.fd);
    }
    vds.Close();
    for (auto &s : streams) {
        delete s.dev;
        std::string final_name = s.file.substr(0, s.file.size() - 8);
        if (ok && rename(s.file.c_str(), final_name.c_str()) != 0)
            ok = false;
        if (!ok)
            unlink(s.file.c_str());
    }
    printf("attach-client: backup to %s %s\n", media.c_str(), ok ? "succeeded" : "FAILED");
    return ok ? 0 : 1;
}
