/* vdi-worker-client: a Linux VDI backup application of the single-device worker kind,
 * written against the SDK surface only (vdi.h, libsqlvdi.so). One thread does everything:
 * it creates the set, starts `sqlcmd`, and polls: GetConfiguration and GetCommand wait at
 * most one second at a time, and every timeout is a chance to check that sqlcmd is still
 * alive and that the session has not been idle too long. It asks for VDF_RequestComplete:
 * a backup is written to MEDIA.partial at each command's position, and only when
 * VDC_Complete arrives is it synced and renamed to MEDIA, before the server is told the
 * command completed, so a backup SQL Server reports as done is a backup that exists.
 *
 * usage: vdi-worker-client backup|restore DATABASE MEDIA [options]   (see --help) */
#include "vdi.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int error_invalid_parameter = 87; /* Win32 codes the SDK's headers lack */
constexpr int error_write_fault = 29;
constexpr int error_read_fault = 30;

const char usage_text[] =
    "usage: vdi-worker-client backup|restore DATABASE MEDIA [options]\n"
    "Backs DATABASE up to the file MEDIA, or restores it from MEDIA, through `sqlcmd` on\n"
    "PATH, with one virtual device served by one thread that polls.\n"
    "  --block-size B    BLOCKSIZE of the statement\n"
    "  --max-transfer M  MAXTRANSFERSIZE of the statement\n"
    "  --buffers K       BUFFERCOUNT of the statement\n"
    "  --log             BACKUP LOG / RESTORE LOG instead of DATABASE\n"
    "  --poll-ms MS      the timeout of each GetConfiguration / GetCommand (default 1000)\n"
    "  --idle-limit S    give up (SignalAbort) after S seconds without a command (default 60)\n"
    "Exit status: 0 when sqlcmd succeeded and the device ended normally (a backup: after\n"
    "VDC_Complete, when the server offered it), 1 otherwise, 2 on a usage error.\n";

struct options {
    bool backup = false;
    std::string database, media;
    unsigned long block = 0, transfer = 0, buffers = 0;
    bool log = false;
    long poll_ms = 1000;
    long idle_limit_s = 60;
};

[[noreturn]] void usage(const std::string &msg) {
    fprintf(stderr, "vdi-worker-client: %s (try --help)\n", msg.c_str());
    exit(2);
}

unsigned long number(const char *opt, const char *v, unsigned long lo, unsigned long hi) {
    char *end = nullptr;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi || v[0] == '-')
        usage(std::string(opt) + ": '" + v + "' is not a number from " + std::to_string(lo) +
              " to " + std::to_string(hi));
    return n;
}

options parse(int argc, char **argv) {
    options o;
    if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        exit(0);
    }
    if (argc < 4 || (strcmp(argv[1], "backup") != 0 && strcmp(argv[1], "restore") != 0))
        usage("expected backup|restore DATABASE MEDIA");
    o.backup = strcmp(argv[1], "backup") == 0;
    o.database = argv[2];
    o.media = argv[3];
    for (int i = 4; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--log") {
            o.log = true;
            continue;
        }
        if (i + 1 >= argc)
            usage("'" + a + "' needs a value, or is not an option");
        const char *v = argv[++i];
        if (a == "--block-size")
            o.block = number("--block-size", v, 1, 1ul << 30);
        else if (a == "--max-transfer")
            o.transfer = number("--max-transfer", v, 1, 1ul << 30);
        else if (a == "--buffers")
            o.buffers = number("--buffers", v, 1, 4096);
        else if (a == "--poll-ms")
            o.poll_ms = static_cast<long>(number("--poll-ms", v, 1, 60000));
        else if (a == "--idle-limit")
            o.idle_limit_s = static_cast<long>(number("--idle-limit", v, 1, 86400));
        else
            usage("unknown option '" + a + "'");
    }
    if (o.database.find_first_of("[]'") != std::string::npos)
        usage("DATABASE must not contain [ ] or '");
    if (o.media.empty() || o.media == "-")
        usage("MEDIA must be a file name");
    return o;
}

std::string statement(const options &o, const std::string &device) {
    std::string s = std::string(o.backup ? "BACKUP " : "RESTORE ") +
                    (o.log ? "LOG [" : "DATABASE [") + o.database +
                    (o.backup ? "] TO VIRTUAL_DEVICE = '" : "] FROM VIRTUAL_DEVICE = '") + device +
                    "' WITH ";
    if (o.block)
        s += "BLOCKSIZE = " + std::to_string(o.block) + ", ";
    if (o.transfer)
        s += "MAXTRANSFERSIZE = " + std::to_string(o.transfer) + ", ";
    if (o.buffers)
        s += "BUFFERCOUNT = " + std::to_string(o.buffers) + ", ";
    return s + (o.backup ? "FORMAT, INIT" : "REPLACE");
}

/* sqlcmd from PATH, -b so that any error fails its exit status. */
pid_t start_sqlcmd(const std::string &stmt) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sqlcmd", "sqlcmd", "-S", "localhost", "-E", "-b", "-Q", stmt.c_str(),
               static_cast<char *>(nullptr));
        fprintf(stderr, "vdi-worker-client: cannot run sqlcmd: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

/* The child, polled between waits: its exit status once it has exited, else -1. */
class sqlcmd_child {
  public:
    explicit sqlcmd_child(pid_t pid) : pid_(pid) {}
    bool exited() {
        if (status_ < 0 && pid_ > 0) {
            int st = 0;
            pid_t r = waitpid(pid_, &st, WNOHANG);
            if (r == pid_)
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        return status_ >= 0 || pid_ <= 0;
    }
    int wait() {
        while (status_ < 0 && pid_ > 0) {
            int st = 0;
            pid_t r = waitpid(pid_, &st, 0);
            if (r == pid_)
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            else if (errno != EINTR)
                return 127;
        }
        return pid_ > 0 ? status_ : 127;
    }

  private:
    pid_t pid_;
    int status_ = -1;
};

struct worker {
    explicit worker(const options &opts) : o(opts) {}
    const options &o;
    int fd = -1;
    std::string partial;    /* backup: the file being written */
    bool completed = false; /* VDC_Complete was served */
    bool finalized = false; /* the backup was renamed to MEDIA */
    unsigned long long bytes = 0;
    long timeouts = 0;
    std::string error;

    /* VDC_Complete: the backup is whole; make it the media before saying so. */
    int finalize() {
        if (fsync(fd) != 0 || rename(partial.c_str(), o.media.c_str()) != 0) {
            error = o.media + ": " + strerror(errno);
            return error_write_fault;
        }
        finalized = true;
        return ERROR_SUCCESS;
    }

    int perform(const VDC_Command *cmd, unsigned long *done) {
        size_t size = static_cast<size_t>(cmd->size);
        off_t pos = static_cast<off_t>(cmd->position);
        ssize_t n = 0;
        switch (cmd->commandCode) {
        case VDC_Write:
            if (!o.backup)
                return error_invalid_parameter;
            n = pwrite(fd, cmd->buffer, size, pos);
            *done = n > 0 ? static_cast<unsigned long>(n) : 0;
            return *done == size ? ERROR_SUCCESS : n < 0 ? error_write_fault : ERROR_DISK_FULL;
        case VDC_Read:
            if (o.backup)
                return error_invalid_parameter;
            n = pread(fd, cmd->buffer, size, pos);
            *done = n > 0 ? static_cast<unsigned long>(n) : 0;
            return *done == size ? ERROR_SUCCESS : n < 0 ? error_read_fault : ERROR_HANDLE_EOF;
        case VDC_Flush:
            return fsync(fd) == 0 ? ERROR_SUCCESS : error_write_fault;
        case VDC_Complete:
            completed = true;
            return o.backup ? finalize() : ERROR_SUCCESS;
        case VDC_ClearError:
            return ERROR_SUCCESS;
        default:
            return ERROR_NOT_SUPPORTED;
        }
    }
};

const char *code_name(int rc) {
    switch (rc) {
    case NOERROR:
        return "NOERROR";
    case VD_E_CLOSE:
        return "VD_E_CLOSE";
    case VD_E_ABORT:
        return "VD_E_ABORT";
    case VD_E_TIMEOUT:
        return "VD_E_TIMEOUT";
    case VD_E_PROTOCOL:
        return "VD_E_PROTOCOL";
    default:
        return "another VD_E code";
    }
}

} // namespace

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    worker w(o);
    std::string set = "vdiworker-" + std::to_string(static_cast<long>(getpid()));
    if (!o.backup && (w.fd = open(o.media.c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "vdi-worker-client: %s: %s\n", o.media.c_str(), strerror(errno));
        return 1;
    }
    ClientVirtualDeviceSet vds;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = 1;
    cfg.features = VDF_RequestComplete;
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    int rc = vds.Create(name.data(), &cfg);
    if (rc != NOERROR) {
        fprintf(stderr, "vdi-worker-client: Create: 0x%08x\n", static_cast<unsigned>(rc));
        return 1;
    }
    sqlcmd_child sqlcmd(start_sqlcmd(statement(o, set)));
    bool ok = true;
    long idle_ms = 0;
    const long idle_limit_ms = o.idle_limit_s * 1000;
    /* Poll for the configuration: a sqlcmd that died before opening the set ends it. */
    while ((rc = vds.GetConfiguration(o.poll_ms, &cfg)) == VD_E_TIMEOUT) {
        w.timeouts++;
        idle_ms += o.poll_ms;
        if (sqlcmd.exited() || idle_ms >= idle_limit_ms)
            break;
    }
    ClientVirtualDevice *dev = nullptr;
    if (rc == NOERROR && o.backup) {
        w.partial = o.media + ".partial";
        w.fd = open(w.partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w.fd < 0) {
            fprintf(stderr, "vdi-worker-client: %s: %s\n", w.partial.c_str(), strerror(errno));
            ok = false;
        }
    }
    if (rc == NOERROR && ok)
        rc = vds.OpenDevice(name.data(), &dev);
    if (rc != NOERROR || !ok) {
        fprintf(stderr, "vdi-worker-client: the session did not start: %s\n", code_name(rc));
        ok = false;
        vds.SignalAbort(); /* sqlcmd, when it is there, gives up at once */
    }
    int end = NOERROR;
    idle_ms = 0;
    while (dev) {
        VDC_Command *cmd = nullptr;
        rc = dev->GetCommand(o.poll_ms, &cmd);
        if (rc == VD_E_TIMEOUT) {
            w.timeouts++;
            idle_ms += o.poll_ms;
            if (sqlcmd.exited() || idle_ms >= idle_limit_ms) {
                fprintf(stderr, "vdi-worker-client: %s; aborting\n",
                        sqlcmd.exited() ? "sqlcmd exited mid-session" : "idle too long");
                vds.SignalAbort();
            }
            continue;
        }
        if (rc != NOERROR) {
            end = rc;
            break;
        }
        idle_ms = 0;
        unsigned long done = 0;
        int code = w.perform(cmd, &done);
        w.bytes += done;
        rc = dev->CompleteCommand(cmd, code, done, cmd->position);
        if (rc != NOERROR) {
            end = rc;
            break;
        }
    }
    if (dev && end != VD_E_CLOSE) {
        fprintf(stderr, "vdi-worker-client: the device ended with %s\n", code_name(end));
        ok = false;
    }
    bool want_complete = o.backup && (cfg.features & VDF_CompleteEnabled);
    if (dev && want_complete && !w.completed) {
        fprintf(stderr, "vdi-worker-client: the backup ended without VDC_Complete\n");
        ok = false;
    }
    if (!w.error.empty()) {
        fprintf(stderr, "vdi-worker-client: %s\n", w.error.c_str());
        ok = false;
    }
    vds.Close();
    delete dev;
    int status = sqlcmd.wait();
    ok = ok && status == 0;
    /* Without VDC_Complete (a server that does not offer it) the exit status decides. */
    if (ok && o.backup && !w.finalized && w.finalize() != ERROR_SUCCESS) {
        fprintf(stderr, "vdi-worker-client: %s\n", w.error.c_str());
        ok = false;
    }
    if (w.fd >= 0 && close(w.fd) != 0)
        ok = false;
    if (o.backup && !w.finalized && !w.partial.empty())
        unlink(w.partial.c_str());
    fprintf(stderr,
            "vdi-worker-client: %s of %s %s, %llu bytes, %ld poll timeouts (sqlcmd exit %d)\n",
            argv[1], o.database.c_str(), ok ? "succeeded" : "FAILED", w.bytes, w.timeouts, status);
    return ok ? 0 : 1;
}
