/* vdi-sample-client: a small Linux VDI backup application written against the SDK surface
 * only (vdi.h, libsqlvdi.so), shaped like the vendors' programs: it creates the virtual
 * device set, runs `sqlcmd` from PATH with the BACKUP or RESTORE statement, serves each
 * device on a thread of its own, and reports what sqlcmd said. Device i is stored in
 * MEDIA (device 0) or MEDIA.i.
 *
 * usage: vdi-sample-client backup|restore DATABASE MEDIA [DEVICES] */
#include "vdi.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct stream {
    std::string name;
    std::string file;
    ClientVirtualDevice *dev = nullptr;
    int fd = -1;
    int end = NOERROR; /* what ended the device: VD_E_CLOSE when it went well */
};

/* Write stores at the command's position, Read serves from it (short at the end:
 * ERROR_HANDLE_EOF); anything else just succeeds. */
void serve(stream *s) {
    for (;;) {
        VDC_Command *cmd = nullptr;
        int rc = s->dev->GetCommand(-1, &cmd);
        if (rc != NOERROR) {
            s->end = rc;
            return;
        }
        int code = ERROR_SUCCESS;
        unsigned long done = 0;
        size_t size = static_cast<size_t>(cmd->size);
        off_t pos = static_cast<off_t>(cmd->position);
        if (cmd->commandCode == VDC_Write) {
            ssize_t n = pwrite(s->fd, cmd->buffer, size, pos);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = done == size ? ERROR_SUCCESS : ERROR_DISK_FULL;
        } else if (cmd->commandCode == VDC_Read) {
            ssize_t n = pread(s->fd, cmd->buffer, size, pos);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = done == size ? ERROR_SUCCESS : ERROR_HANDLE_EOF;
        }
        rc = s->dev->CompleteCommand(cmd, code, done, cmd->position);
        if (rc != NOERROR) {
            s->end = rc;
            return;
        }
    }
}

/* Runs sqlcmd (found on PATH) with the statement; its pid, or -1. */
pid_t start_sqlcmd(const std::string &stmt) {
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sqlcmd", "sqlcmd", "-S", "localhost", "-E", "-b", "-Q", stmt.c_str(),
               static_cast<char *>(nullptr));
        fprintf(stderr, "vdi-sample-client: cannot run sqlcmd: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

const char *code_name(int rc) {
    switch (rc) {
    case VD_E_CLOSE:
        return "VD_E_CLOSE";
    case VD_E_ABORT:
        return "VD_E_ABORT";
    case VD_E_TIMEOUT:
        return "VD_E_TIMEOUT";
    case VD_E_PROTOCOL:
        return "VD_E_PROTOCOL";
    case VD_E_INVALID:
        return "VD_E_INVALID";
    default:
        return "another VD_E code";
    }
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5 || (strcmp(argv[1], "backup") && strcmp(argv[1], "restore"))) {
        fprintf(stderr, "usage: %s backup|restore DATABASE MEDIA [DEVICES]\n", argv[0]);
        return 2;
    }
    bool backup = strcmp(argv[1], "backup") == 0;
    int ndev = argc == 5 ? atoi(argv[4]) : 1;
    if (ndev < 1 || ndev > 64) {
        fprintf(stderr, "DEVICES must be 1..64\n");
        return 2;
    }
    std::string set = "vdisample-" + std::to_string(static_cast<long>(getpid()));
    std::vector<stream> streams(static_cast<size_t>(ndev));
    std::string stmt = std::string(backup ? "BACKUP" : "RESTORE") + " DATABASE [" + argv[2] + "] " +
                       (backup ? "TO " : "FROM ");
    for (int i = 0; i < ndev; i++) {
        stream &s = streams[static_cast<size_t>(i)];
        s.name = i == 0 ? set : set + "_" + std::to_string(i);
        s.file = i == 0 ? std::string(argv[3]) : std::string(argv[3]) + "." + std::to_string(i);
        s.fd = open(s.file.c_str(), backup ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        if (s.fd < 0) {
            fprintf(stderr, "%s: %s\n", s.file.c_str(), strerror(errno));
            return 1;
        }
        stmt += (i ? ", VIRTUAL_DEVICE = '" : "VIRTUAL_DEVICE = '") + s.name + "'";
    }
    stmt += backup ? " WITH FORMAT, INIT, STATS = 25" : " WITH REPLACE";

    ClientVirtualDeviceSet vds;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = static_cast<uint32_t>(ndev);
    cfg.features = VDF_RequestComplete;
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    int rc = vds.Create(name.data(), &cfg);
    if (rc != NOERROR) {
        fprintf(stderr, "Create: 0x%08x\n", static_cast<unsigned>(rc));
        return 1;
    }
    pid_t sqlcmd = start_sqlcmd(stmt);
    bool ok = sqlcmd > 0;
    rc = ok ? vds.GetConfiguration(30000, &cfg) : VD_E_ABORT;
    if (rc != NOERROR) {
        fprintf(stderr, "GetConfiguration: %s\n", code_name(rc));
        ok = false;
    }
    std::vector<std::thread> threads;
    for (auto &s : streams) {
        std::vector<char> dn(s.name.begin(), s.name.end());
        dn.push_back('\0');
        if (ok && (rc = vds.OpenDevice(dn.data(), &s.dev)) != NOERROR) {
            fprintf(stderr, "OpenDevice %s: %s\n", s.name.c_str(), code_name(rc));
            ok = false;
            vds.SignalAbort();
        }
    }
    for (auto &s : streams)
        if (s.dev)
            threads.emplace_back(serve, &s);
    for (auto &t : threads)
        t.join();
    for (auto &s : streams) {
        if (s.dev && s.end != VD_E_CLOSE) {
            fprintf(stderr, "device %s ended with %s\n", s.name.c_str(), code_name(s.end));
            ok = false;
        }
        close(s.fd);
    }
    vds.Close();
    for (auto &s : streams)
        delete s.dev;
    int st = 0;
    while (sqlcmd > 0 && waitpid(sqlcmd, &st, 0) < 0 && errno == EINTR) {
    }
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    printf("vdi-sample-client: %s of %s %s (sqlcmd exit %d)\n", argv[1], argv[2],
           ok && status == 0 ? "succeeded" : "FAILED", status);
    return ok && status == 0 ? 0 : 1;
}
