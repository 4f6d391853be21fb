/* race_client.cpp: four broken VDI clients whose one bug is a race of the client's own
 * threads that needs one particular interleaving: the OS almost never makes it, nor do
 * libsqlvdi's seeded delays (--shake), because no VDI call lies inside the racy window. They
 * are the test load of the LD_PRELOAD scheduler (chaos/sched/), which has to find what
 * shaking does not. Apart from its bug each is a correct client of the sample client's shape
 * (create the set, run sqlcmd from PATH, a thread per device, device i's media in MEDIA or
 * MEDIA.i at each command's position) that stages a backup's bytes in memory and writes the
 * media once sqlcmd reported success. Chosen at build time:
 *
 *   BUG_LOST_UPDATE           the byte counter of all devices is read, the statistics lock
 *                             taken and released, and the sum stored: a device thread that
 *                             adds in between is lost, and the media are written up to the
 *                             counter, so the last device's file is cut and the backup does
 *                             not restore (truth: backup-does-not-restore; needs 2 devices)
 *   BUG_COMPLETE_AFTER_CLOSE  on a device's failure the main thread aborts the set, waits
 *                             until no device thread is inside a VDI call (each counts itself
 *                             in and out under a lock), closes the set and joins the threads
 *                             after; a device thread counts itself out once its bytes are
 *                             staged, a few instructions before its CompleteCommand, which
 *                             then comes after the Close when main checks in between
 *                             (protocol: complete-after-close; 2 devices, abort after N)
 *   BUG_LOST_WAKEUP           a device thread marks itself done without the lock the main
 *                             thread checks under, then notifies: a mark and notify between
 *                             the main thread's check and its wait are lost, and the main
 *                             thread waits forever (ends: hang)
 *   BUG_CLOSE_BEFORE_JOIN     on a device's failure the main thread aborts and closes the set
 *                             at once, and joins the device threads after: another device's
 *                             GetCommand that began before the Close and reaches the library
 *                             after it is answered VD_E_PROTOCOL (protocol: call-after-close,
 *                             "GetCommand overtaken by the set's Close"; never concurrent-get,
 *                             as no second GetCommand runs on that device; 2 devices)
 *
 * usage: race-client-NAME backup|restore DATABASE MEDIA [DEVICES]   (DEVICES: 2 by default)
 *
 * Measured by `ci/bench.sh --sched --runs 100` (release, 2 cores, idle): runs out of 100
 * with the bug's finding, the OS alone / libsqlvdi's seeded delays (--shake 1) / the
 * controlled scheduler (--sched pct, then random):
 *   lost-update           4 / 0 / 2 (pct:3), 46 (random)
 *   lost-wakeup           0 / 0 / 1 (pct:3), 1 (random)
 *   complete-after-close  0 / 0 / 17 (pct:2), 0 (random)   (plan `abort after 2`)
 * and each scheduler finding's plan replayed 100 times to the same schedule trace. Under
 * the OS's own scheduling each passes the clean plan (clients.race_clients_clean).
 */
#include "vdi.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
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
    int end = NOERROR;             /* what ended the device: VD_E_CLOSE when it went well */
    std::vector<uint8_t> staged;   /* backup: the device's bytes, written to file on success */
    size_t staged_len = 0;         /* of which this many are the stream's */
    size_t room = 0;               /* backup: MAXTRANSFERSIZE, kept free before a GetCommand */
    std::atomic<bool> done{false}; /* the device thread made its last VDI call */
};

/* The statistics: commands served and devices ended, for the summary line. */
std::mutex stats_mu;
unsigned long writes = 0;
int ended = 0;

/* The bytes the server handed over on all devices; the media are written up to it. Relaxed:
 * the device threads only add to it, and main reads it after joining them (the joins order
 * every store before that load). */
std::atomic<uint64_t> total{0};

/* The hand-off from the device threads to main: a device failed, or every device is done. */
std::mutex end_mu;
std::condition_variable end_cv;
bool failed = false; /* guarded by end_mu */
std::string first_error;

#if defined(BUG_COMPLETE_AFTER_CLOSE)
/* Main closes the set once no device thread is inside a VDI call: the device threads count
 * themselves in before their calls and out after them. */
std::mutex busy_mu;
std::condition_variable busy_cv;
int busy = 0; /* guarded by busy_mu */

void vdi_in() {
    std::lock_guard<std::mutex> g(busy_mu);
    ++busy;
}
void vdi_out(bool tell) {
    {
        std::lock_guard<std::mutex> g(busy_mu);
        --busy;
    }
    if (tell)
        busy_cv.notify_all();
}
#endif

bool all_done(const std::vector<stream> &streams) {
    for (const auto &s : streams)
        if (s.dev && !s.done.load())
            return false;
    return true;
}

void count_bytes(unsigned long n) {
#if defined(BUG_LOST_UPDATE)
    /* BUG: the read and the store are apart; another device's sum in between is lost */
    uint64_t v = total.load(std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> g(stats_mu);
        ++writes;
    }
    total.store(v + n, std::memory_order_relaxed);
#else
    {
        std::lock_guard<std::mutex> g(stats_mu);
        ++writes;
    }
    total.fetch_add(n, std::memory_order_relaxed);
#endif
}

/* The device's end, for main: a failure is reported under end_mu; then the done mark. */
void finish(stream *s, int rc) {
    s->end = rc;
    {
        std::lock_guard<std::mutex> g(stats_mu);
        ++ended;
    }
    if (rc != VD_E_CLOSE) {
        std::lock_guard<std::mutex> lk(end_mu);
        failed = true;
        if (first_error.empty())
            first_error = s->name + ": GetCommand or CompleteCommand failed";
    }
#if defined(BUG_LOST_WAKEUP)
    /* BUG: main checks the marks under end_mu, and this store does not take it: a store and
     * notify between main's check and its wait wake nobody */
    s->done.store(true);
#else
    {
        std::lock_guard<std::mutex> lk(end_mu);
        s->done.store(true);
    }
#endif
    end_cv.notify_all();
}

/* A write is staged at its position, a read served from the file at it (short at the end:
 * ERROR_HANDLE_EOF); anything else just succeeds. */
void serve(stream *s) {
    for (;;) {
#if defined(BUG_COMPLETE_AFTER_CLOSE)
        vdi_in(); /* in for the whole command: the wait for it, serving it */
#endif
        /* The staging grows (an allocation, a copy, zeroing) while no command is held, by
         * at least 16 commands' worth at a time, so serving a command costs a memcpy. */
        if (s->room && s->staged.size() < s->staged_len + s->room)
            s->staged.resize(std::max(2 * s->staged.size(), s->staged_len + 16 * s->room));
        VDC_Command *cmd = nullptr;
        int rc = s->dev->GetCommand(-1, &cmd);
        if (rc != NOERROR) {
#if defined(BUG_COMPLETE_AFTER_CLOSE)
            vdi_out(true);
#endif
            finish(s, rc);
            return;
        }
        int code = ERROR_SUCCESS;
        unsigned long done = 0;
        size_t size = static_cast<size_t>(cmd->size);
        size_t pos = static_cast<size_t>(cmd->position);
        if (cmd->commandCode == VDC_Write) {
            if (s->staged.size() < pos + size)
                s->staged.resize(pos + size);
            if (size)
                memcpy(s->staged.data() + pos, cmd->buffer, size);
            s->staged_len = std::max(s->staged_len, pos + size);
            done = static_cast<unsigned long>(size);
        } else if (cmd->commandCode == VDC_Read) {
            ssize_t n = pread(s->fd, cmd->buffer, size, static_cast<off_t>(pos));
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = done == size ? ERROR_SUCCESS : ERROR_HANDLE_EOF;
        }
        count_bytes(done);
#if defined(BUG_COMPLETE_AFTER_CLOSE)
        /* BUG: out as soon as the bytes are staged, with the CompleteCommand still to make */
        vdi_out(false);
#endif
        rc = s->dev->CompleteCommand(cmd, code, done, cmd->position);
        if (rc != NOERROR) {
            finish(s, rc);
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

/* Writes each device's staged bytes to its file, devices in order, up to the total. */
bool write_media(std::vector<stream> &streams) {
    uint64_t left = total.load(std::memory_order_relaxed);
    bool ok = true;
    for (auto &s : streams) {
        size_t keep = static_cast<size_t>(std::min<uint64_t>(s.staged_len, left));
        if (pwrite(s.fd, s.staged.data(), keep, 0) != static_cast<ssize_t>(keep))
            ok = false;
        left -= keep;
    }
    return ok;
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5 || (strcmp(argv[1], "backup") != 0 && strcmp(argv[1], "restore"))) {
        fprintf(stderr, "usage: %s backup|restore DATABASE MEDIA [DEVICES]\n", argv[0]);
        return 2;
    }
    bool backup = strcmp(argv[1], "backup") == 0;
    int ndev = argc == 5 ? atoi(argv[4]) : 2;
    if (ndev < 1 || ndev > 64)
        return 2;
    std::string set = "vdirace-" + std::to_string(static_cast<long>(getpid()));
    std::vector<stream> streams(static_cast<size_t>(ndev));
    std::string stmt = std::string(backup ? "BACKUP" : "RESTORE") + " DATABASE [" + argv[2] +
                       (backup ? "] TO " : "] FROM ");
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
    for (auto &s : streams) {
        std::vector<char> dn(s.name.begin(), s.name.end());
        dn.push_back('\0');
        s.room = backup ? cfg.maxTransferSize : 0;
        if (ok && vds.OpenDevice(dn.data(), &s.dev) != NOERROR) {
            ok = false;
            vds.SignalAbort();
        }
    }
    std::vector<std::thread> threads;
    for (auto &s : streams)
        if (s.dev)
            threads.emplace_back(serve, &s);
    bool device_failed = false;
    {
        std::unique_lock<std::mutex> lk(end_mu);
        while (!failed && !all_done(streams))
            end_cv.wait(lk);
        device_failed = failed;
    }
#if defined(BUG_COMPLETE_AFTER_CLOSE)
    /* The set closed once no device thread is in a VDI call: their counts are the bug */
    bool closed = device_failed;
    if (device_failed) {
        vds.SignalAbort();
        std::unique_lock<std::mutex> lk(busy_mu);
        while (busy > 0)
            busy_cv.wait(lk);
        lk.unlock();
        vds.Close();
    }
#elif defined(BUG_CLOSE_BEFORE_JOIN)
    /* BUG: closed while the other device threads may still be on their way into a call */
    bool closed = device_failed;
    if (device_failed) {
        vds.SignalAbort();
        vds.Close();
    }
#else
    if (device_failed)
        vds.SignalAbort(); /* the other devices stop now, not at their server's timeout */
#endif
    for (auto &t : threads)
        t.join();
    if (!first_error.empty())
        fprintf(stderr, "race-client: %s\n", first_error.c_str());
    for (auto &s : streams)
        if (s.dev && s.end != VD_E_CLOSE)
            ok = false;
#if defined(BUG_COMPLETE_AFTER_CLOSE) || defined(BUG_CLOSE_BEFORE_JOIN)
    if (!closed)
        vds.Close();
#else
    vds.Close();
#endif
    for (auto &s : streams)
        delete s.dev;
    int st = 0;
    while (sqlcmd > 0 && waitpid(sqlcmd, &st, 0) < 0 && errno == EINTR) {
    }
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (backup && ok && status == 0 && !write_media(streams))
        ok = false;
    for (auto &s : streams)
        close(s.fd);
    printf("race-client: %s of %s %s (sqlcmd exit %d; %lu commands, %d devices ended)\n", argv[1],
           argv[2], ok && status == 0 ? "succeeded" : "FAILED", status, writes, ended);
    return ok && status == 0 ? 0 : 1;
}
