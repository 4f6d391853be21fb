/* bad_client.cpp: the gallery of broken VDI clients that vdichaos client must catch. Each
 * program is the sample client's shape (create the set, run sqlcmd from PATH, a thread per
 * device, media at each command's position) with exactly one bug that vendors really
 * write, chosen at build time:
 *
 *   BUG_EXIT0_AFTER_ABORT  any GetCommand error ends the stream as VD_E_CLOSE does, and
 *                          sqlcmd's exit status is not looked at: an aborted backup "succeeds"
 *   BUG_TIMEOUT_FATAL      GetCommand waits 1 s and a VD_E_TIMEOUT is taken for a dead
 *                          server: a slow but healthy backup is aborted
 *   BUG_PARTIAL_MEDIA      the media is written to MEDIA.partial and renamed to MEDIA when
 *                          the devices end, however they ended: a partial backup looks complete
 *   BUG_LEAK_SET           the error path exits through a fatal() helper without Close: the
 *                          set's shared memory stays behind
 *   BUG_SPIN_ON_ABORT      every error but VD_E_CLOSE is "transient" and retried at once:
 *                          after an abort the device thread spins forever
 *   BUG_DEADLOCK_AT_ABORT  a device thread reports its error under the status lock, which the
 *                          main thread holds while it joins the device threads: an abort
 *                          deadlocks them
 *   BUG_TOUCH_AFTER_CLOSE  after a failure, the last command's buffer is wiped "for
 *                          security" once the set is closed: the view is gone
 *   BUG_RACY_COUNTER       the device threads add to one byte counter without a lock (a
 *                          data race, for the TSan build)
 *   BUG_COMPLETE_EARLY     a write is completed before its bytes are saved "to keep the
 *                          server busy": the buffer is the server's again and its next
 *                          command's bytes may be in it by the time they are written (seen
 *                          when the client's threads are shaken)
 *   BUG_TRIM_MEDIA         after a backup, the trailing zeros of each media file are cut
 *                          "to save space": the stream is shorter than the server wrote it,
 *                          so the backup does not restore
 *
 * usage: bad-client-NAME backup|restore DATABASE MEDIA [DEVICES] */
#include "vdi.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
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
    int end = NOERROR;
};

std::mutex status_mu; /* guards the error report between device threads and main */
std::string first_error;
#if defined(BUG_TOUCH_AFTER_CLOSE)
uint8_t *last_buffer = nullptr; /* the last command's buffer, and its size */
size_t last_size = 0;
#endif
unsigned long total_bytes = 0; /* BUG_RACY_COUNTER: shared by the device threads */

#if defined(BUG_TIMEOUT_FATAL)
constexpr time_t get_timeout = 1000; /* "a healthy server sends well within a second" */
#else
constexpr time_t get_timeout = -1;
#endif

void serve(ClientVirtualDeviceSet *vds, stream *s) {
    (void)vds;
    for (;;) {
        VDC_Command *cmd = nullptr;
        int rc = s->dev->GetCommand(get_timeout, &cmd);
#if defined(BUG_SPIN_ON_ABORT)
        if (rc != NOERROR && rc != VD_E_CLOSE)
            continue; /* BUG: VD_E_ABORT is final, not transient */
#endif
#if defined(BUG_TIMEOUT_FATAL)
        if (rc == VD_E_TIMEOUT) {
            fprintf(stderr, "bad-client: the server stopped answering; aborting\n");
            vds->SignalAbort(); /* BUG: a timeout only means nothing came yet */
        }
#endif
        if (rc != NOERROR && rc != VD_E_CLOSE) {
            std::lock_guard<std::mutex> lk(status_mu);
            if (first_error.empty())
                first_error = s->name + ": GetCommand failed";
        }
        if (rc != NOERROR) {
#if defined(BUG_EXIT0_AFTER_ABORT)
            rc = VD_E_CLOSE; /* BUG: every end of the command stream is taken as the normal one */
#endif
            s->end = rc;
            return;
        }
        int code = ERROR_SUCCESS;
        unsigned long done = 0;
        size_t size = static_cast<size_t>(cmd->size);
        off_t pos = static_cast<off_t>(cmd->position);
#if defined(BUG_COMPLETE_EARLY)
        if (cmd->commandCode == VDC_Write) { /* BUG: the buffer is not ours after this */
            uint8_t *buf = cmd->buffer;
            rc = s->dev->CompleteCommand(cmd, ERROR_SUCCESS, static_cast<unsigned long>(size),
                                         cmd->position);
            ssize_t n = pwrite(s->fd, buf, size, pos);
            if (rc != NOERROR || n != static_cast<ssize_t>(size)) {
                s->end = rc != NOERROR ? rc : VD_E_ABORT;
                return;
            }
            continue;
        }
#endif
        if (cmd->commandCode == VDC_Write) {
            ssize_t n = pwrite(s->fd, cmd->buffer, size, pos);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = done == size ? ERROR_SUCCESS : ERROR_DISK_FULL;
        } else if (cmd->commandCode == VDC_Read) {
            ssize_t n = pread(s->fd, cmd->buffer, size, pos);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = done == size ? ERROR_SUCCESS : ERROR_HANDLE_EOF;
        }
#if defined(BUG_RACY_COUNTER)
        total_bytes += done; /* BUG: every device thread writes it, unlocked */
#else
        {
            std::lock_guard<std::mutex> lk(status_mu);
            total_bytes += done;
        }
#endif
#if defined(BUG_TOUCH_AFTER_CLOSE)
        if (cmd->buffer && size) {
            std::lock_guard<std::mutex> lk(status_mu);
            last_buffer = cmd->buffer;
            last_size = size;
        }
#endif
        rc = s->dev->CompleteCommand(cmd, code, done, cmd->position);
        if (rc != NOERROR) {
#if defined(BUG_EXIT0_AFTER_ABORT)
            rc = VD_E_CLOSE;
#endif
            s->end = rc;
            return;
        }
    }
}

pid_t start_sqlcmd(const std::string &stmt) {
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sqlcmd", "sqlcmd", "-S", "localhost", "-E", "-b", "-Q", stmt.c_str(),
               static_cast<char *>(nullptr));
        _exit(127);
    }
    return pid;
}

#if defined(BUG_TRIM_MEDIA)
/* BUG: the zeros are the server's: the restore reads them back */
void trim_zeros(const std::string &file) {
    int fd = open(file.c_str(), O_RDWR);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    unsigned char b = 0;
    while (end > 0 && pread(fd, &b, 1, end - 1) == 1 && b == 0)
        end--;
    if (ftruncate(fd, end) != 0)
        fprintf(stderr, "bad-client: cannot trim %s\n", file.c_str());
    close(fd);
}
#endif

#if defined(BUG_LEAK_SET)
[[noreturn]] void fatal(const char *what) {
    fprintf(stderr, "bad-client: fatal: %s\n", what);
    exit(1); /* BUG: no Close on this path; exit() runs no destructor of main's set */
}
#endif

} // namespace

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5 || (strcmp(argv[1], "backup") != 0 && strcmp(argv[1], "restore"))) {
        fprintf(stderr, "usage: %s backup|restore DATABASE MEDIA [DEVICES]\n", argv[0]);
        return 2;
    }
    bool backup = strcmp(argv[1], "backup") == 0;
    int ndev = argc == 5 ? atoi(argv[4]) : 1;
    if (ndev < 1 || ndev > 64)
        return 2;
    std::string set = "vdibad-" + std::to_string(static_cast<long>(getpid()));
    std::string media = argv[3];
#if defined(BUG_PARTIAL_MEDIA)
    std::string written = backup ? media + ".partial" : media;
#else
    std::string written = media;
#endif
    std::vector<stream> streams(static_cast<size_t>(ndev));
    std::string stmt = std::string(backup ? "BACKUP" : "RESTORE") + " DATABASE [" + argv[2] +
                       (backup ? "] TO " : "] FROM ");
    for (int i = 0; i < ndev; i++) {
        stream &s = streams[static_cast<size_t>(i)];
        s.name = i == 0 ? set : set + "_" + std::to_string(i);
        s.file = i == 0 ? written : written + "." + std::to_string(i);
        s.fd = open(s.file.c_str(), backup ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        if (s.fd < 0)
            return 1;
        stmt += (i ? ", VIRTUAL_DEVICE = '" : "VIRTUAL_DEVICE = '") + s.name + "'";
    }
    if (!backup)
        stmt += " WITH REPLACE";
    ClientVirtualDeviceSet vds;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = static_cast<uint32_t>(ndev);
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    if (vds.Create(name.data(), &cfg) != NOERROR)
        return 1;
    pid_t sqlcmd = start_sqlcmd(stmt);
    bool ok = sqlcmd > 0 && vds.GetConfiguration(30000, &cfg) == NOERROR;
    std::vector<std::thread> threads;
    for (auto &s : streams) {
        std::vector<char> dn(s.name.begin(), s.name.end());
        dn.push_back('\0');
        if (ok && vds.OpenDevice(dn.data(), &s.dev) != NOERROR) {
            ok = false;
            vds.SignalAbort();
        }
    }
    for (auto &s : streams)
        if (s.dev)
            threads.emplace_back(serve, &vds, &s);
    {
#if defined(BUG_DEADLOCK_AT_ABORT)
        /* BUG: "keep the status stable while the devices finish" */
        std::lock_guard<std::mutex> lk(status_mu);
#endif
        for (auto &t : threads)
            t.join();
    }
    if (!first_error.empty())
        fprintf(stderr, "bad-client: %s\n", first_error.c_str());
    for (auto &s : streams) {
        if (s.dev && s.end != VD_E_CLOSE)
            ok = false;
        close(s.fd);
    }
#if defined(BUG_PARTIAL_MEDIA)
    if (backup) /* BUG: the devices ended, so the media is "done", whatever sqlcmd will say */
        for (auto &s : streams) {
            std::string final_name = media + s.file.substr(written.size());
            if (rename(s.file.c_str(), final_name.c_str()) != 0)
                ok = false;
        }
#endif
#if defined(BUG_LEAK_SET)
    if (!ok) {
        int st = 0;
        while (sqlcmd > 0 && waitpid(sqlcmd, &st, 0) < 0 && errno == EINTR) {
        }
        fatal("a device failed");
    }
#endif
    vds.Close();
#if defined(BUG_TOUCH_AFTER_CLOSE)
    if (!ok && last_buffer)
        memset(last_buffer, 0, last_size); /* BUG: the buffers went with the set's Close */
#endif
    for (auto &s : streams)
        delete s.dev;
    int st = 0;
    while (sqlcmd > 0 && waitpid(sqlcmd, &st, 0) < 0 && errno == EINTR) {
    }
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
#if defined(BUG_EXIT0_AFTER_ABORT)
    status = 0; /* BUG: "sqlcmd prints its own errors" */
#endif
#if defined(BUG_TRIM_MEDIA)
    if (backup && ok && status == 0)
        for (auto &s : streams)
            trim_zeros(s.file);
#endif
    printf("bad-client: %s of %s %s (sqlcmd exit %d)\n", argv[1], argv[2],
           ok && status == 0 ? "succeeded" : "FAILED", status);
    return ok && status == 0 ? 0 : 1;
}
