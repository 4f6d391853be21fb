/* vdi-pipe-client: a Linux VDI backup application of the pipe kind, written against the SDK
 * surface only (vdi.h, libsqlvdi.so). Its media is a plain sequential stream: each device
 * thread writes every VDC_Write's bytes after the previous ones and serves every VDC_Read
 * with the next bytes of its stream, ignoring the command's position, as the tools that
 * pipe a backup into a compressor or a network socket do. It asks for no feature beyond
 * VDF_LikePipe (no seeking), and optionally VDF_RequestComplete. With one device the media
 * may be "-": the backup goes to stdout, the restore comes from stdin (sqlcmd's messages
 * then go to stderr).
 *
 * usage: vdi-pipe-client backup|restore DATABASE MEDIA [options]   (see --help) */
#include "vdi.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

/* Win32 completion codes the SDK's headers do not define (winerror.h values). */
constexpr int error_read_fault = 30;
constexpr int error_invalid_parameter = 87;

const char usage_text[] =
    "usage: vdi-pipe-client backup|restore DATABASE MEDIA [options]\n"
    "Backs DATABASE up to MEDIA, or restores it from MEDIA, through `sqlcmd` on PATH, storing\n"
    "each device as a plain sequential stream: device 0 in MEDIA (\"-\": stdout for a backup,\n"
    "stdin for a restore), device i in MEDIA.i. A backup writes MEDIA.partial (MEDIA.i.partial)\n"
    "and renames it to MEDIA only when it succeeded: an old MEDIA survives a failed backup.\n"
    "  --devices N       virtual devices (stripes), 1..64 (default 1; \"-\" needs 1)\n"
    "  --block-size B    BLOCKSIZE of the statement\n"
    "  --max-transfer M  MAXTRANSFERSIZE of the statement\n"
    "  --buffers K       BUFFERCOUNT of the statement\n"
    "  --record R        refuse any Read or Write that is not a whole number of R-byte records\n"
    "  --complete        ask for VDC_Complete (VDF_RequestComplete) and require it on a backup\n"
    "  --log             BACKUP LOG / RESTORE LOG instead of DATABASE\n"
    "Exit status: 0 when sqlcmd succeeded and every device ended normally, 1 otherwise,\n"
    "2 on a usage error.\n";

struct options {
    bool backup = false;
    std::string database, media;
    int devices = 1;
    unsigned long block = 0, transfer = 0, buffers = 0, record = 0;
    bool complete = false, log = false;
};

struct stream {
    std::string name; /* the virtual device */
    std::string file;
    std::string partial; /* backup to a file: where it is written until it succeeded */
    ClientVirtualDevice *dev = nullptr;
    int fd = -1;
    int end = NOERROR; /* what ended the device: VD_E_CLOSE when it went well */
    bool got_complete = false;
    unsigned long long bytes = 0;
    std::string error; /* the first command this client could not perform */
};

[[noreturn]] void usage(const std::string &msg) {
    fprintf(stderr, "vdi-pipe-client: %s (try --help)\n", msg.c_str());
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
        if (a == "--complete" || a == "--log") {
            (a == "--complete" ? o.complete : o.log) = true;
            continue;
        }
        if (i + 1 >= argc)
            usage("'" + a + "' needs a value, or is not an option");
        const char *v = argv[++i];
        if (a == "--devices")
            o.devices = static_cast<int>(number("--devices", v, 1, 64));
        else if (a == "--block-size")
            o.block = number("--block-size", v, 1, 1ul << 30);
        else if (a == "--max-transfer")
            o.transfer = number("--max-transfer", v, 1, 1ul << 30);
        else if (a == "--buffers")
            o.buffers = number("--buffers", v, 1, 4096);
        else if (a == "--record")
            o.record = number("--record", v, 1, 1ul << 30);
        else
            usage("unknown option '" + a + "'");
    }
    if (o.media == "-" && o.devices != 1)
        usage("MEDIA '-' (stdin/stdout) holds one device only");
    if (o.database.find_first_of("[]'") != std::string::npos)
        usage("DATABASE must not contain [ ] or '");
    return o;
}

/* Whole transfers or an error: a pipe delivers its bytes in pieces. */
ssize_t write_all(int fd, const uint8_t *p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, p + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        done += static_cast<size_t>(k);
    }
    return static_cast<ssize_t>(done);
}

/* As many bytes as the stream still has, up to n; -1 on a read error. */
ssize_t read_full(int fd, uint8_t *p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = read(fd, p + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        done += static_cast<size_t>(k);
    }
    return static_cast<ssize_t>(done);
}

/* One device: the next bytes of the stream for every command, whatever its position. */
void serve(stream *s, unsigned long record) {
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
        bool data = cmd->commandCode == VDC_Write || cmd->commandCode == VDC_Read;
        if (data && record && size % record != 0) {
            if (s->error.empty())
                s->error = "a transfer of " + std::to_string(size) + " bytes is not a whole " +
                           "number of " + std::to_string(record) + "-byte records";
            code = error_invalid_parameter;
        } else if (cmd->commandCode == VDC_Write) {
            ssize_t n = write_all(s->fd, cmd->buffer, size);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = n < 0 ? ERROR_DISK_FULL : ERROR_SUCCESS;
        } else if (cmd->commandCode == VDC_Read) {
            ssize_t n = read_full(s->fd, cmd->buffer, size);
            done = n > 0 ? static_cast<unsigned long>(n) : 0;
            code = n < 0 ? error_read_fault : done < size ? ERROR_HANDLE_EOF : ERROR_SUCCESS;
        } else if (cmd->commandCode == VDC_Flush || cmd->commandCode == VDC_Complete) {
            /* What was written must last before the server takes the backup as done. */
            struct stat st;
            if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(s->fd) != 0)
                code = ERROR_DISK_FULL;
            if (cmd->commandCode == VDC_Complete)
                s->got_complete = true;
        } else if (cmd->commandCode != VDC_ClearError) {
            code = ERROR_NOT_SUPPORTED; /* a pipe cannot position, skip or mark */
        }
        s->bytes += done;
        rc = s->dev->CompleteCommand(cmd, code, done, cmd->position);
        if (rc != NOERROR) {
            s->end = rc;
            return;
        }
    }
}

/* Runs sqlcmd from PATH with the statement, -b so that any error fails its exit status.
 * When stdout carries the media, sqlcmd's messages go to stderr. */
pid_t start_sqlcmd(const std::string &stmt, bool stdout_is_media, bool stdin_is_media) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (stdout_is_media)
            dup2(2, 1);
        if (stdin_is_media) { /* the media is ours alone */
            int null = open("/dev/null", O_RDONLY);
            if (null >= 0)
                dup2(null, 0);
        }
        execlp("sqlcmd", "sqlcmd", "-S", "localhost", "-E", "-b", "-Q", stmt.c_str(),
               static_cast<char *>(nullptr));
        fprintf(stderr, "vdi-pipe-client: cannot run sqlcmd: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

std::string statement(const options &o, const std::vector<stream> &streams) {
    std::string s = std::string(o.backup ? "BACKUP " : "RESTORE ") +
                    (o.log ? "LOG [" : "DATABASE [") + o.database +
                    (o.backup ? "] TO " : "] FROM ");
    for (size_t i = 0; i < streams.size(); i++)
        s += (i ? ", VIRTUAL_DEVICE = '" : "VIRTUAL_DEVICE = '") + streams[i].name + "'";
    std::vector<std::string> with;
    if (o.block)
        with.push_back("BLOCKSIZE = " + std::to_string(o.block));
    if (o.transfer)
        with.push_back("MAXTRANSFERSIZE = " + std::to_string(o.transfer));
    if (o.buffers)
        with.push_back("BUFFERCOUNT = " + std::to_string(o.buffers));
    with.push_back(o.backup ? "FORMAT, INIT" : "REPLACE");
    for (size_t i = 0; i < with.size(); i++)
        s += (i ? ", " : " WITH ") + with[i];
    return s;
}

int open_media(const options &o, stream *s) {
    if (s->file == "-")
        return o.backup ? 1 : 0;
    if (!o.backup)
        return open(s->file.c_str(), O_RDONLY | O_CLOEXEC);
    s->partial = s->file + ".partial";
    return open(s->partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

} // namespace

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    std::string set = "vdipipe-" + std::to_string(static_cast<long>(getpid()));
    std::vector<stream> streams(static_cast<size_t>(o.devices));
    for (size_t i = 0; i < streams.size(); i++) {
        streams[i].name = i == 0 ? set : set + "_" + std::to_string(i);
        streams[i].file = i == 0 ? o.media : o.media + "." + std::to_string(i);
    }
    /* A restore's media must exist before anything starts; a backup's file is created
     * (and an old one replaced) only once the server has configured the set. */
    if (!o.backup) {
        for (auto &s : streams) {
            if ((s.fd = open_media(o, &s)) < 0) {
                fprintf(stderr, "vdi-pipe-client: %s: %s\n", s.file.c_str(), strerror(errno));
                return 1;
            }
        }
    }

    ClientVirtualDeviceSet vds;
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = static_cast<uint32_t>(o.devices);
    cfg.features = VDF_LikePipe | (o.complete ? uint32_t{VDF_RequestComplete} : 0u);
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    int rc = vds.Create(name.data(), &cfg);
    if (rc != NOERROR) {
        fprintf(stderr, "vdi-pipe-client: Create: 0x%08x\n", static_cast<unsigned>(rc));
        return 1;
    }
    pid_t sqlcmd = start_sqlcmd(statement(o, streams), o.backup && o.media == "-",
                                !o.backup && o.media == "-");
    bool ok = sqlcmd > 0;
    /* Wait for the server a second at a time: a sqlcmd that exits before it opened the set
     * (not found, a syntax error) ends the wait at once instead of after a minute. */
    int st = 0;
    bool reaped = false;
    rc = ok ? VD_E_TIMEOUT : VD_E_ABORT;
    for (int waited = 0; rc == VD_E_TIMEOUT && waited < 60; waited++) {
        rc = vds.GetConfiguration(1000, &cfg);
        if (rc == VD_E_TIMEOUT && waitpid(sqlcmd, &st, WNOHANG) == sqlcmd) {
            reaped = true;
            break;
        }
    }
    if (rc != NOERROR) {
        fprintf(stderr, "vdi-pipe-client: GetConfiguration: 0x%08x\n", static_cast<unsigned>(rc));
        ok = false;
    }
    for (auto &s : streams) {
        if (ok && o.backup && (s.fd = open_media(o, &s)) < 0) {
            fprintf(stderr, "vdi-pipe-client: %s: %s\n", s.partial.c_str(), strerror(errno));
            ok = false;
        }
        std::vector<char> dn(s.name.begin(), s.name.end());
        dn.push_back('\0');
        if (ok && (rc = vds.OpenDevice(dn.data(), &s.dev)) != NOERROR) {
            fprintf(stderr, "vdi-pipe-client: OpenDevice %s: 0x%08x\n", s.name.c_str(),
                    static_cast<unsigned>(rc));
            ok = false;
        }
    }
    if (!ok)
        vds.SignalAbort(); /* the server gives up at once instead of waiting for us */
    std::vector<std::thread> threads;
    for (auto &s : streams)
        if (s.dev)
            threads.emplace_back(serve, &s, o.record);
    for (auto &t : threads)
        t.join();
    bool want_complete = o.backup && o.complete && (cfg.features & VDF_CompleteEnabled);
    for (auto &s : streams) {
        if (!s.error.empty()) {
            fprintf(stderr, "vdi-pipe-client: device %s: %s\n", s.name.c_str(), s.error.c_str());
            ok = false;
        }
        if (s.dev && s.end != VD_E_CLOSE) {
            fprintf(stderr, "vdi-pipe-client: device %s ended with 0x%08x\n", s.name.c_str(),
                    static_cast<unsigned>(s.end));
            ok = false;
        }
        if (s.dev && want_complete && !s.got_complete) {
            fprintf(stderr, "vdi-pipe-client: device %s: no VDC_Complete\n", s.name.c_str());
            ok = false;
        }
        if (s.fd > 2 && close(s.fd) != 0)
            ok = false;
    }
    vds.Close();
    for (auto &s : streams)
        delete s.dev;
    while (sqlcmd > 0 && !reaped && waitpid(sqlcmd, &st, 0) < 0 && errno == EINTR) {
    }
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    ok = ok && status == 0;
    for (auto &s : streams) { /* the new media replaces the old only when all of it is good */
        if (s.partial.empty())
            continue;
        if (ok && rename(s.partial.c_str(), s.file.c_str()) != 0) {
            fprintf(stderr, "vdi-pipe-client: %s: %s\n", s.file.c_str(), strerror(errno));
            ok = false;
        }
    }
    for (auto &s : streams)
        if (!s.partial.empty() && !ok)
            unlink(s.partial.c_str());
    unsigned long long total = 0;
    for (auto &s : streams)
        total += s.bytes;
    fprintf(stderr, "vdi-pipe-client: %s of %s %s, %llu bytes (sqlcmd exit %d)\n", argv[1],
            o.database.c_str(), ok ? "succeeded" : "FAILED", total, status);
    return ok ? 0 : 1;
}
