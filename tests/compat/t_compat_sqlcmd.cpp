/* t_compat_sqlcmd: a Linux VDI client written against the SDK surface only (vdi.h of
 * ref/compat, libsqlvdi.so) runs BACKUP and RESTORE through vdi-sqlcmd, the way a vendor's
 * program would: create the set, start "sqlcmd" with the statement, serve the devices.
 * It checks that a backup and its restore give the database back byte for byte with one
 * device and with several (a thread per device), and that each chaos knob of vdi-sqlcmd
 * shows at the client as the contract says: VD_E_ABORT, VD_E_CLOSE, VD_E_TIMEOUT, and the
 * extra VDC_Flush / VDC_Complete commands. vdi-sqlcmd's exit is reaped on a thread of its
 * own, so that the peer-death cases see a dead server, not a zombie; nothing sleeps.
 *
 * usage: t_compat_sqlcmd VDI_SQLCMD CASE */
#include "t_compat.h"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace {

const char *sqlcmd_bin;
std::string work_dir;
unsigned set_seq;

/* Die knob: vdi-sqlcmd's _exit status (see its --help). */
constexpr int die_exit_status = 99;
/* Long enough for a sanitized vdi-sqlcmd to answer, short enough to fail within the test
 * timeout instead of hanging. */
constexpr long wait_ms = 8000;

std::string unique_set(const char *stem) {
    return std::string("compat-") + stem + "-" + std::to_string(static_cast<long>(getpid())) + "-" +
           std::to_string(set_seq++);
}

std::string read_all(const std::string &path) {
    std::string s;
    FILE *f = fopen(path.c_str(), "rb");
    if (!f)
        return s;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        s.append(buf, n);
    fclose(f);
    return s;
}

bool contains(const std::string &hay, const std::string &needle) {
    return hay.find(needle) != std::string::npos;
}

/* vdi-sqlcmd as a child process; its exit is collected by a reaper thread. */
class child {
  public:
    child(const std::vector<std::string> &args, const std::vector<std::string> &env) {
        out_path_ = work_dir + "/sqlcmd-" + std::to_string(set_seq) + ".out";
        std::vector<std::string> envs;
        bool own_dir = false; /* the case names the data directory (or "" for the default) */
        for (const auto &e : env)
            own_dir |= e.rfind("VDI_SQLCMD_DATA_DIR=", 0) == 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "VDI_SQLCMD_", 11) != 0 && (!own_dir || strncmp(*e, "TMPDIR=", 7) != 0))
                envs.push_back(*e);
        if (!own_dir)
            envs.push_back("VDI_SQLCMD_DATA_DIR=" + work_dir);
        for (const auto &e : env)
            envs.push_back(e);
        std::vector<char *> argv, envp;
        argv.push_back(const_cast<char *>(sqlcmd_bin));
        for (const auto &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        for (auto &e : envs)
            envp.push_back(const_cast<char *>(e.c_str()));
        envp.push_back(nullptr);
        int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        T_REQUIRE(out >= 0);
        pid_ = fork();
        T_REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            dup2(out, 1);
            dup2(out, 2);
            execve(sqlcmd_bin, argv.data(), envp.data());
            _exit(127);
        }
        close(out);
        reaper_ = std::thread([this] {
            int st = 0;
            while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        });
    }

    /* The exit status (128 + signal when killed) and everything it printed. */
    int wait(std::string *output) {
        reaper_.join();
        *output = read_all(out_path_);
        return status_;
    }

  private:
    pid_t pid_ = -1;
    std::thread reaper_;
    int status_ = -1;
    std::string out_path_;
};

/* What one device saw. Written by its own thread only; read after the join. */
struct device_log {
    std::string name;
    ClientVirtualDevice *dev = nullptr;
    std::vector<uint8_t> stream; /* backup: what came; restore: what to serve */
    std::map<int, int> codes;    /* commands taken, by command code */
    std::vector<int> order;      /* command codes in the order they came */
    int final_rc = NOERROR;      /* what ended the loop */
    int completed = 0;           /* CompleteCommand calls that returned NOERROR */
    int complete_errors = 0;     /* ... that returned anything else */
    int timeouts = 0;
    int abort_rc = -1; /* the client's own SignalAbort, when it made one */
    /* A pipe-like device: Write appends, Read serves the next bytes, the position is only
     * checked (it must be where the stream is), and every transfer must be whole blocks of
     * the configured size; anything else is refused with ERROR_INVALID_PARAMETER and noted. */
    bool pipe = false;
    uint32_t block = 0; /* VDConfig.blockSize, from GetConfiguration */
    size_t next = 0;    /* pipe: the stream offset the next transfer continues from */
    std::vector<std::string> violations;
};

constexpr int error_invalid_parameter = 87; /* Win32 ERROR_INVALID_PARAMETER */

/* A pipe-like device's verdict on one transfer: "" when it may go on. */
std::string pipe_violation(const device_log *d, const VDC_Command *cmd) {
    std::string what = std::string(cmd->commandCode == VDC_Read ? "Read" : "Write") + " of " +
                       std::to_string(cmd->size) + " at " + std::to_string(cmd->position);
    if (d->block == 0 || cmd->size <= 0 || static_cast<uint32_t>(cmd->size) % d->block != 0)
        return what + ": not whole blocks of " + std::to_string(d->block);
    if (cmd->position != static_cast<int64_t>(d->next))
        return what + ": the stream is at " + std::to_string(d->next) + " (no seeking)";
    return "";
}

/* Serves one device until GetCommand returns anything but a command or a timeout:
 * Write stores at the position, Read serves from the stream (ERROR_HANDLE_EOF past it). */
void serve(device_log *d, long timeout_ms, int max_timeouts, ClientVirtualDeviceSet *vds,
           int abort_after) {
    for (;;) {
        if (d->completed == abort_after)
            d->abort_rc = vds->SignalAbort();
        VDC_Command *cmd = nullptr;
        int rc = d->dev->GetCommand(timeout_ms, &cmd);
        if (rc == VD_E_TIMEOUT && ++d->timeouts <= max_timeouts)
            continue;
        if (rc != NOERROR) {
            d->final_rc = rc;
            return;
        }
        d->codes[cmd->commandCode]++;
        d->order.push_back(cmd->commandCode);
        int code = ERROR_SUCCESS;
        unsigned long bytes = 0;
        size_t pos = static_cast<size_t>(cmd->position);
        size_t size = static_cast<size_t>(cmd->size);
        bool data = cmd->commandCode == VDC_Write || cmd->commandCode == VDC_Read;
        if (d->pipe && data) {
            std::string v = pipe_violation(d, cmd);
            pos = d->next; /* a pipe has no positions: the next bytes, whatever was asked */
            if (!v.empty()) {
                d->violations.push_back(v);
                code = error_invalid_parameter;
                size = 0;
                data = false;
            }
            d->next += size;
        }
        if (!data) {
        } else if (cmd->commandCode == VDC_Write) {
            if (d->stream.size() < pos + size)
                d->stream.resize(pos + size);
            memcpy(d->stream.data() + pos, cmd->buffer, size);
            bytes = size;
        } else if (cmd->commandCode == VDC_Read) {
            size_t have = pos < d->stream.size() ? d->stream.size() - pos : 0;
            bytes = have < size ? have : size;
            memcpy(cmd->buffer, d->stream.data() + pos, bytes);
            if (bytes < size)
                code = ERROR_HANDLE_EOF;
        }
        if (d->dev->CompleteCommand(cmd, code, bytes, cmd->position) == NOERROR)
            d->completed++;
        else
            d->complete_errors++;
    }
}

struct session_opts {
    bool restore = false;
    bool log = false; /* BACKUP LOG / RESTORE LOG */
    std::string database = "compatdb";
    int devices = 1;
    std::string with;              /* WITH clause, without the keyword */
    std::vector<std::string> args; /* extra vdi-sqlcmd arguments (knobs) */
    std::vector<std::string> env;  /* extra environment (knobs) */
    uint32_t features = 0;         /* VDConfig.features the client asks for */
    long get_timeout_ms = wait_ms; /* GetCommand timeout */
    int max_timeouts = 0;          /* VD_E_TIMEOUTs tolerated per device */
    bool thread_per_device = false;
    int client_abort_after = -1;      /* the client calls SignalAbort after completing N */
    bool close_while_serving = false; /* Close on the main thread while devices serve */
    bool pipe = false;                /* pipe-like devices (device_log::pipe) */
    bool fail_exit = true;            /* run vdi-sqlcmd with -b (every case but one does) */
    enum { DELETE_AFTER_CLOSE, DELETE_BEFORE_CLOSE, NEVER_DELETE } lifetime = DELETE_AFTER_CLOSE;
};

struct session_result {
    int config_rc = NOERROR;
    int close_rc = NOERROR;
    int status = -1;
    std::string output;
    std::vector<device_log> devs;
};

/* One client session against one vdi-sqlcmd run. For a restore, streams holds what each
 * device serves, in device order. */
session_result run_session(const session_opts &o,
                           const std::vector<std::vector<uint8_t>> &streams = {}) {
    session_result r;
    std::string set = unique_set(o.restore ? "restore" : "backup");
    r.devs.resize(static_cast<size_t>(o.devices));
    std::string stmt = std::string(o.restore ? "restore " : "BACKUP ") +
                       (o.log ? "Log [" : "DATABASE [") + o.database + "]" +
                       (o.restore ? " FROM " : " TO ");
    for (int i = 0; i < o.devices; i++) {
        device_log &d = r.devs[static_cast<size_t>(i)];
        d.name = i == 0 ? set : set + "-dev" + std::to_string(i);
        if (o.restore && static_cast<size_t>(i) < streams.size())
            d.stream = streams[static_cast<size_t>(i)];
        stmt += std::string(i ? ", " : "") + (i % 2 ? "virtual_device = N'" : "VIRTUAL_DEVICE='") +
                d.name + "'";
    }
    if (!o.with.empty())
        stmt += " WITH " + o.with;

    auto *vds = new ClientVirtualDeviceSet();
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = static_cast<uint32_t>(o.devices);
    cfg.features = o.features;
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    T_EXPECT_OK(vds->Create(name.data(), &cfg));

    std::vector<std::string> args = {"-S", "localhost", "-E", "-Q", stmt};
    if (o.fail_exit)
        args.insert(args.begin() + 3, "-b");
    args.insert(args.end(), o.args.begin(), o.args.end());
    child sqlcmd(args, o.env);

    r.config_rc = vds->GetConfiguration(wait_ms, &cfg);
    if (r.config_rc == NOERROR) {
        for (auto &d : r.devs) {
            std::vector<char> dn(d.name.begin(), d.name.end());
            dn.push_back('\0');
            d.pipe = o.pipe;
            d.block = cfg.blockSize;
            int rc = vds->OpenDevice(dn.data(), &d.dev);
            if (rc != NOERROR) {
                d.final_rc = rc;
                d.dev = nullptr;
            }
        }
        if (o.thread_per_device) {
            std::vector<std::thread> ts;
            for (auto &d : r.devs)
                if (d.dev)
                    ts.emplace_back(serve, &d, o.get_timeout_ms, o.max_timeouts, vds,
                                    o.client_abort_after);
            if (o.close_while_serving)
                r.close_rc = vds->Close();
            for (auto &t : ts)
                t.join();
        } else {
            for (auto &d : r.devs)
                if (d.dev)
                    serve(&d, o.get_timeout_ms, o.max_timeouts, vds, o.client_abort_after);
        }
    }
    if (o.lifetime == session_opts::DELETE_BEFORE_CLOSE)
        for (auto &d : r.devs)
            delete d.dev;
    if (!o.close_while_serving)
        r.close_rc = vds->Close();
    if (o.lifetime == session_opts::DELETE_AFTER_CLOSE) {
        for (auto &d : r.devs) {
            if (!d.dev)
                continue;
            /* The set closed: the object still answers (no command), then goes away. */
            VDC_Command *cmd = nullptr;
            T_EXPECT_CODE(d.dev->GetCommand(0, &cmd), VD_E_PROTOCOL);
            T_EXPECT(cmd == nullptr);
            delete d.dev;
        }
    }
    delete vds;
    for (auto &d : r.devs)
        d.dev = nullptr; /* NEVER_DELETE: the library keeps them */
    r.status = sqlcmd.wait(&r.output);
    if (r.status != 0 || getenv("T_COMPAT_VERBOSE"))
        fprintf(stderr, "--- vdi-sqlcmd (%s) exited %d:\n%s---\n", stmt.c_str(), r.status,
                r.output.c_str());
    return r;
}

std::vector<uint8_t> file_bytes(const std::string &path) {
    std::string s = read_all(path);
    return std::vector<uint8_t>(s.begin(), s.end());
}

/* The image vdi-sqlcmd backs up (generated from the name) and the one a restore writes. */
std::string image_of(const std::string &db, bool log) {
    return work_dir + "/" + db + (log ? "_log.ldf" : ".mdf");
}

std::string restored_of(const std::string &db, bool log) {
    return work_dir + "/" + db + (log ? "_log.restored.ldf" : ".restored.mdf");
}

/* The normal end: every device ended with VD_E_CLOSE, nothing refused, Close was clean. */
void expect_clean(const session_result &r, const char *verb, const std::string &db,
                  bool log = false) {
    T_EXPECT_EQ(r.status, 0);
    T_EXPECT_OK(r.config_rc);
    T_EXPECT_OK(r.close_rc);
    for (const auto &d : r.devs) {
        T_EXPECT_CODE(d.final_rc, VD_E_CLOSE);
        T_EXPECT_EQ(d.complete_errors, 0);
        for (const auto &v : d.violations)
            fprintf(stderr, "device %s refused: %s\n", d.name.c_str(), v.c_str());
        T_EXPECT(d.violations.empty());
    }
    uint64_t size = file_bytes(image_of(db, log)).size();
    T_EXPECT(size > 0);
    std::string pages = std::to_string((size + 8191) / 8192);
    T_EXPECT(contains(r.output, "Processed " + pages + " pages for database '" + db + "', file '" +
                                    db + (log ? "_log" : "") + "' on file 1."));
    T_EXPECT(contains(r.output, std::string(verb) + " successfully processed " + pages + " pages"));
    T_EXPECT(!contains(r.output, "Msg "));
}

/* An abnormal end as the client sees it: some device got VD_E_ABORT, nothing ended
 * normally, and vdi-sqlcmd -b said so and failed. */
void expect_aborted(const session_result &r, int want_status) {
    T_EXPECT_EQ(r.status, want_status);
    int aborted = 0;
    for (const auto &d : r.devs) {
        aborted += d.final_rc == VD_E_ABORT;
        T_EXPECT(d.final_rc != VD_E_CLOSE);
    }
    T_EXPECT(aborted > 0 || r.config_rc == VD_E_ABORT);
    T_EXPECT(r.close_rc == NOERROR || r.close_rc == VD_E_OPEN);
}

std::vector<std::vector<uint8_t>> streams_of(const session_result &r) {
    std::vector<std::vector<uint8_t>> s;
    for (const auto &d : r.devs)
        s.push_back(d.stream);
    return s;
}

void backup_then_restore(int devices, bool threads, bool log) {
    session_opts b;
    b.log = log;
    b.database = devices > 1 ? "striped" : log ? "logged" : "single";
    b.devices = devices;
    b.thread_per_device = threads;
    b.with = devices > 1 ? "MAXTRANSFERSIZE = 65536, BUFFERCOUNT = 6, FORMAT, INIT, STATS = 50"
                         : "maxtransfersize=131072, blocksize=4096, init";
    /* Asking for VDC_Complete makes vdi-sqlcmd send one per device (negotiated). */
    b.features = devices > 1 ? uint32_t{VDF_RequestComplete} : 0u;
    session_result br = run_session(b);
    expect_clean(br, log ? "BACKUP LOG" : "BACKUP DATABASE", b.database, log);
    if (devices > 1)
        T_EXPECT(contains(br.output, "50 percent processed.") &&
                 contains(br.output, "100 percent processed."));
    for (const auto &d : br.devs) {
        T_EXPECT(d.codes.count(VDC_Write) && d.codes.at(VDC_Write) >= 2);
        T_EXPECT_EQ(d.codes.count(VDC_Flush) ? d.codes.at(VDC_Flush) : 0, 1);
        T_EXPECT_EQ(d.codes.count(VDC_Complete) ? d.codes.at(VDC_Complete) : 0,
                    devices > 1 ? 1 : 0);
        T_EXPECT(d.stream.size() > 512 && memcmp(d.stream.data(), "VDISQLCMD-MEDIA", 15) == 0);
    }

    session_opts r = b;
    r.restore = true;
    r.features = 0;
    r.with = devices > 1 ? "MAXTRANSFERSIZE=131072, REPLACE, STATS" : "REPLACE";
    r.lifetime = devices > 1 ? session_opts::DELETE_BEFORE_CLOSE : session_opts::NEVER_DELETE;
    std::vector<std::vector<uint8_t>> streams = streams_of(br);
    if (devices > 1) /* the stripes may be listed in any order */
        std::swap(streams[0], streams[static_cast<size_t>(devices) - 1]);
    session_result rr = run_session(r, streams);
    expect_clean(rr, log ? "RESTORE LOG" : "RESTORE DATABASE", r.database, log);
    for (const auto &d : rr.devs) {
        T_EXPECT(d.codes.count(VDC_Read) && d.codes.at(VDC_Read) >= 2);
        T_EXPECT_EQ(d.codes.count(VDC_Write), 0);
    }
    std::vector<uint8_t> original = file_bytes(image_of(b.database, log));
    std::vector<uint8_t> restored = file_bytes(restored_of(b.database, log));
    T_EXPECT(original.size() > (log ? 60000 : 500000));
    T_EXPECT(original == restored);
}

/* A client that keeps each device as a plain sequential stream (a pipe: no positions,
 * whole blocks only) backs up and restores: the restore must read every stream exactly as
 * the backup wrote it, the first read one whole block, every read continuing the last. */
void pipe_round_trip(const std::string &db, int devices, const std::string &backup_with,
                     const std::string &restore_with) {
    session_opts b;
    b.database = db;
    b.devices = devices;
    b.thread_per_device = devices > 1;
    b.pipe = true;
    b.features = VDF_LikePipe;
    b.with = backup_with;
    b.args = {"--db-size", "300001"};
    session_result br = run_session(b);
    expect_clean(br, "BACKUP DATABASE", db);
    session_opts r = b;
    r.restore = true;
    r.with = restore_with;
    session_result rr = run_session(r, streams_of(br));
    expect_clean(rr, "RESTORE DATABASE", db);
    for (size_t i = 0; i < rr.devs.size(); i++) /* every byte of every stream was read */
        T_EXPECT_EQ(rr.devs[i].next, br.devs[i].stream.size());
    T_EXPECT(file_bytes(image_of(db, false)) == file_bytes(restored_of(db, false)));
}

/* The files of the work directory whose names contain `part`. */
std::vector<std::string> files_with(const std::string &dir, const std::string &part) {
    std::vector<std::string> names;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return names;
    while (struct dirent *e = readdir(d))
        if (strstr(e->d_name, part.c_str()))
            names.push_back(e->d_name);
    closedir(d);
    return names;
}

/* vdi-sqlcmd with the default data directory under tmpdir: a backup that fails at once
 * (no such set, --timeout 0) once it got past the directory check. */
int run_default_dir(const std::string &tmpdir, std::string *out) {
    child c({"-b", "--timeout", "0", "-Q", "BACKUP DATABASE dirdb TO VIRTUAL_DEVICE='no-such-set'"},
            {"VDI_SQLCMD_DATA_DIR=", "TMPDIR=" + tmpdir});
    return c.wait(out);
}

/* A knob that aborts mid-stream: the client's device ends in VD_E_ABORT. */
session_result aborted_backup(const std::vector<std::string> &args,
                              const std::vector<std::string> &env, int want_status) {
    session_opts o;
    o.database = "chaosdb";
    o.with = "MAXTRANSFERSIZE = 65536, BUFFERCOUNT = 2";
    o.args = args;
    o.env = env;
    session_result r = run_session(o);
    expect_aborted(r, want_status);
    return r;
}

int run_case(const std::string &c) {
    if (c == "backup_restore") {
        backup_then_restore(1, false, false);
    } else if (c == "backup_restore_log") {
        backup_then_restore(1, false, true);
    } else if (c == "backup_restore_striped") {
        backup_then_restore(3, true, false);
    } else if (c == "restore_sequential") {
        /* Same and different BLOCKSIZE / MAXTRANSFERSIZE on the two sides, one and three
         * stripes, several reads in flight. */
        pipe_round_trip("seqdefault", 1, "FORMAT", "REPLACE");
        pipe_round_trip("seqsmall", 1, "BLOCKSIZE = 512, MAXTRANSFERSIZE = 65536",
                        "BLOCKSIZE = 512, MAXTRANSFERSIZE = 65536, REPLACE");
        pipe_round_trip("seqmixed", 3, "BLOCKSIZE = 4096, MAXTRANSFERSIZE = 131072",
                        "MAXTRANSFERSIZE = 65536, BUFFERCOUNT = 6, REPLACE");
        pipe_round_trip("seqlarger", 2, "BLOCKSIZE = 65536, BUFFERCOUNT = 1",
                        "BLOCKSIZE = 1024, MAXTRANSFERSIZE = 196608, REPLACE");
    } else if (c == "data_dir_unsafe") {
        /* The default data directory ($TMPDIR/vdi-sqlcmd-UID) is refused, before anything
         * is read or written in it, when it is not a private directory of this user. */
        std::string uid = std::to_string(static_cast<unsigned long>(geteuid()));
        auto dir_in = [&](const std::string &t) { return t + "/vdi-sqlcmd-" + uid; };
        std::string out;
        std::string fresh = work_dir + "/fresh";
        T_REQUIRE(mkdir(fresh.c_str(), 0700) == 0);
        T_EXPECT_EQ(run_default_dir(fresh, &out), 1);
        T_EXPECT(contains(out, "Msg 3201") && !contains(out, "refusing"));
        struct stat st;
        T_EXPECT(stat(dir_in(fresh).c_str(), &st) == 0 && (st.st_mode & 07777) == 0700);
        T_EXPECT_EQ(run_default_dir(fresh, &out), 1); /* the same, now existing */
        T_EXPECT(contains(out, "Msg 3201") && !contains(out, "refusing"));
        for (unsigned mode : {0777u, 0720u, 0702u}) {
            std::string t = work_dir + "/mode" + std::to_string(mode);
            T_REQUIRE(mkdir(t.c_str(), 0700) == 0 && mkdir(dir_in(t).c_str(), 0700) == 0 &&
                      chmod(dir_in(t).c_str(), mode) == 0);
            T_EXPECT_EQ(run_default_dir(t, &out), 1);
            T_EXPECT(contains(out, "refusing the default data directory " + dir_in(t)));
            T_EXPECT(contains(out, "writable by group or others"));
            T_EXPECT(files_with(dir_in(t), "dirdb").empty()); /* nothing made in it */
        }
        std::string link = work_dir + "/link";
        T_REQUIRE(mkdir(link.c_str(), 0700) == 0 &&
                  symlink(dir_in(fresh).c_str(), dir_in(link).c_str()) == 0);
        T_EXPECT_EQ(run_default_dir(link, &out), 1);
        T_EXPECT(contains(out, "symbolic link"));
        if (geteuid() == 0) { /* only root can give a directory away */
            std::string other = work_dir + "/other";
            T_REQUIRE(mkdir(other.c_str(), 0700) == 0 && mkdir(dir_in(other).c_str(), 0700) == 0 &&
                      chown(dir_in(other).c_str(), 65534, 65534) == 0);
            T_EXPECT_EQ(run_default_dir(other, &out), 1);
            T_EXPECT(contains(out, "owned by uid 65534, not by you"));
            T_EXPECT(files_with(dir_in(other), "dirdb").empty());
        } else {
            fprintf(stderr, "not root: the other-owner check is not exercised\n");
        }
    } else if (c == "partial_cleanup") {
        /* A restore killed while writing NAME.restored.mdf leaves no temporary file: a
         * catchable signal removes it at once, a SIGKILL's is removed by the next run
         * (a live process's is kept). */
        session_opts b;
        b.database = "partial";
        b.args = {"--db-size", "3000000"};
        session_result br = run_session(b);
        expect_clean(br, "BACKUP DATABASE", b.database);
        session_opts r = b;
        r.restore = true;
        r.with = "REPLACE";
        r.args = {"--die-at", "writing", "--die-how", "term"};
        session_result term = run_session(r, streams_of(br));
        T_EXPECT_EQ(term.status, 128 + SIGTERM);
        T_EXPECT(contains(term.output, "dying halfway through writing the restored image"));
        T_EXPECT(files_with(work_dir, ".tmp.").empty());
        T_EXPECT(files_with(work_dir, "partial.restored").empty());
        r.args = {"--die-at", "writing", "--die-how", "kill"};
        session_result kill9 = run_session(r, streams_of(br));
        T_EXPECT_EQ(kill9.status, 128 + SIGKILL);
        std::vector<std::string> left = files_with(work_dir, "partial.restored.mdf.tmp.");
        T_EXPECT_EQ(left.size(), 1); /* the window was reached: SIGKILL left its file */
        std::string alive = "alive.restored.mdf.tmp." + std::to_string(static_cast<long>(getpid()));
        FILE *f = fopen((work_dir + "/" + alive).c_str(), "w");
        T_REQUIRE(f != nullptr);
        fclose(f);
        r.args = {};
        session_result again = run_session(r, streams_of(br));
        expect_clean(again, "RESTORE DATABASE", r.database);
        for (const auto &name : left)
            T_EXPECT(contains(again.output, "removed " + work_dir + "/" + name));
        T_EXPECT(files_with(work_dir, "partial.restored.mdf.tmp.").empty());
        T_EXPECT_EQ(files_with(work_dir, alive).size(), 1);
    } else if (c == "db_size_bound") {
        /* --db-size above 4 GiB is refused at parse time, with a message, from the option
         * and from the environment; 4 GiB itself parses. */
        std::string out;
        child opt(
            {"-b", "--db-size", "4294967297", "-Q", "BACKUP DATABASE x TO VIRTUAL_DEVICE='a'"}, {});
        T_EXPECT_EQ(opt.wait(&out), 1);
        T_EXPECT(contains(out, "--db-size: '4294967297' is more than 4294967296 bytes (4 GiB)"));
        child env({"-b", "-Q", "BACKUP DATABASE x TO VIRTUAL_DEVICE='a'"},
                  {"VDI_SQLCMD_DB_SIZE=9223372036854775807"});
        T_EXPECT_EQ(env.wait(&out), 1);
        T_EXPECT(contains(out, "VDI_SQLCMD_DB_SIZE: '9223372036854775807' is more than"));
        child huge({"-b", "--db-size", "99999999999999999999999", "-Q",
                    "BACKUP DATABASE x TO "
                    "VIRTUAL_DEVICE='a'"},
                   {});
        T_EXPECT_EQ(huge.wait(&out), 1);
        T_EXPECT(contains(out, "is not a number"));
        child max({"--db-size", "4294967296", "--parse-only", "-Q",
                   "BACKUP DATABASE x TO VIRTUAL_DEVICE='a'"},
                  {});
        T_EXPECT_EQ(max.wait(&out), 0);
    } else if (c == "checksum_once") {
        /* The image is checksummed once per backup or restore, whatever the device count
         * (a pass per device made a 200 MiB backup to 64 devices take 15.7 s in ASan). */
        session_opts b;
        b.database = "hashdb";
        b.devices = 8;
        b.thread_per_device = true;
        b.with = "MAXTRANSFERSIZE = 65536";
        b.args = {"--db-size", "1000000"};
        b.env = {"VDI_SQLCMD_REPORT_WORK=1"};
        session_result br = run_session(b);
        expect_clean(br, "BACKUP DATABASE", b.database);
        T_EXPECT(contains(br.output, "work: 1000000 image bytes checksummed"));
        session_opts r = b;
        r.restore = true;
        r.with = "REPLACE";
        session_result rr = run_session(r, streams_of(br));
        expect_clean(rr, "RESTORE DATABASE", r.database);
        T_EXPECT(contains(rr.output, "work: 1000000 image bytes checksummed"));
    } else if (c == "restore_damaged") {
        /* vdi-sqlcmd's own verification has teeth: one flipped byte of the media is
         * Msg 3183, and a stripe left out is Msg 3132, both failing the restore. */
        session_opts b;
        b.database = "damaged";
        b.devices = 2;
        b.with = "MAXTRANSFERSIZE = 65536";
        session_result br = run_session(b);
        expect_clean(br, "BACKUP DATABASE", b.database);
        std::vector<std::vector<uint8_t>> streams = streams_of(br);
        T_REQUIRE(streams[1].size() > 70000);
        streams[1][70000] ^= 0x40; /* past the one-block header */
        session_opts r = b;
        r.restore = true;
        r.with = "REPLACE";
        session_result rr = run_session(r, streams);
        T_EXPECT_EQ(rr.status, 1);
        T_EXPECT(contains(rr.output, "Msg 3183, Level 16, State 1"));
        T_EXPECT(contains(rr.output, "RESTORE DATABASE is terminating abnormally."));
        /* Without -b, as sqlcmd does, the same failure exits 0: why every caller uses -b. */
        r.fail_exit = false;
        session_result no_b = run_session(r, streams);
        T_EXPECT_EQ(no_b.status, 0);
        T_EXPECT(contains(no_b.output, "Msg 3183, Level 16, State 1"));
        r.fail_exit = true;
        r.devices = 1;
        session_result missing = run_session(r, streams_of(br));
        T_EXPECT_EQ(missing.status, 1);
        T_EXPECT(contains(missing.output, "Msg 3132, Level 16, State 1"));
        T_EXPECT_CODE(missing.devs[0].final_rc, VD_E_ABORT);
    } else if (c == "client_abort") {
        /* The client gives up after two commands: its own calls answer VD_E_ABORT, and
         * vdi-sqlcmd reports the 995 its commands got. */
        session_opts o;
        o.database = "chaosdb";
        o.with = "MAXTRANSFERSIZE = 65536";
        o.client_abort_after = 2;
        session_result r = run_session(o);
        T_EXPECT_OK(r.devs[0].abort_rc);
        expect_aborted(r, 1);
        T_EXPECT_EQ(r.devs[0].completed, 2);
        T_EXPECT(contains(r.output, "failed: 995(The I/O operation has been aborted"));
    } else if (c == "close_while_serving") {
        /* Close on one thread while a device thread waits in GetCommand (the server is
         * slow): the wait ends with VD_E_ABORT, or, if the thread comes back after Close,
         * the closed device answers VD_E_PROTOCOL; the server sees the abort. */
        session_opts o;
        o.database = "chaosdb";
        o.with = "MAXTRANSFERSIZE = 65536";
        o.args = {"--delay", "300"};
        o.get_timeout_ms = -1;
        o.thread_per_device = true;
        o.close_while_serving = true;
        session_result r = run_session(o);
        int end = r.devs[0].final_rc;
        T_EXPECT(end == VD_E_ABORT || end == VD_E_PROTOCOL);
        T_EXPECT(r.close_rc == NOERROR || r.close_rc == VD_E_OPEN);
        T_EXPECT_EQ(r.status, 1);
        T_EXPECT(contains(r.output, "BACKUP DATABASE is terminating abnormally."));
    } else if (c == "knob_abort_after") {
        /* From the environment: SignalAbort once 3 commands completed. */
        session_result r = aborted_backup({}, {"VDI_SQLCMD_ABORT_AFTER=3"}, 1);
        T_EXPECT(r.devs[0].completed >= 3);
        T_EXPECT(contains(r.output, "abort after 3 commands"));
        T_EXPECT(contains(r.output, "Msg 3013, Level 16, State 1"));
        T_EXPECT(contains(r.output, "BACKUP DATABASE is terminating abnormally."));
    } else if (c == "knob_close_early") {
        session_result r = aborted_backup({"--close-after", "2"}, {}, 1);
        T_EXPECT(r.devs[0].completed >= 2);
        T_EXPECT(contains(r.output, "chaos: premature Close returned VD_E_PROTOCOL"));
        T_EXPECT(contains(r.output, "BACKUP DATABASE is terminating abnormally."));
    } else if (c == "knob_fail_command") {
        session_result r = aborted_backup({"--fail-command=2:112"}, {}, 1);
        T_EXPECT(r.devs[0].completed >= 2);
        T_EXPECT(contains(r.output, "Msg 3202, Level 16, State 1"));
        T_EXPECT(contains(r.output, "failed: 112(There is not enough space on the disk.)"));
        T_EXPECT(contains(r.output, "BACKUP DATABASE is terminating abnormally."));
    } else if (c == "knob_die_exit") {
        /* Dies right after sending its third command; the client learns it by peer
         * death (the reaper has collected it, so it is gone, not a zombie). */
        session_result r =
            aborted_backup({"--die-at", "command:3", "--die-how", "exit"}, {}, die_exit_status);
        T_EXPECT(r.devs[0].codes[VDC_Write] <= 3);
        T_EXPECT(contains(r.output, "chaos: dying after sending command 3"));
    } else if (c == "knob_die_abort") {
        session_result r = aborted_backup(
            {}, {"VDI_SQLCMD_DIE_AT=configured", "VDI_SQLCMD_DIE_HOW=abort"}, 128 + SIGABRT);
        T_EXPECT_EQ(r.devs[0].codes.size(), 0);
        T_EXPECT(contains(r.output, "chaos: dying after configuring the set"));
    } else if (c == "knob_slow") {
        /* 150 ms between commands, a client that waits 10 ms at a time: it sees
         * VD_E_TIMEOUT, keeps going, and the backup still ends normally. */
        session_opts o;
        o.database = "slowdb";
        o.with = "MAXTRANSFERSIZE = 65536";
        o.args = {"--delay", "150", "--db-size", "150000"};
        o.get_timeout_ms = 10;
        o.max_timeouts = 1000;
        session_result r = run_session(o);
        expect_clean(r, "BACKUP DATABASE", o.database);
        T_EXPECT(r.devs[0].timeouts > 0);
        T_EXPECT_EQ(r.devs[0].codes[VDC_Write], 1 + 3); /* header + 150000 B in 64 KiB */
    } else if (c == "knob_flush_complete") {
        /* Three VDC_Flush and a VDC_Complete the client never asked for, after the last
         * Write of each device, then VD_E_CLOSE. */
        session_opts o;
        o.database = "flushdb";
        o.devices = 2;
        o.thread_per_device = true;
        o.with = "MAXTRANSFERSIZE = 65536";
        o.args = {"--flushes", "3"};
        o.env = {"VDI_SQLCMD_COMPLETE=always"};
        session_result r = run_session(o);
        expect_clean(r, "BACKUP DATABASE", o.database);
        for (const auto &d : r.devs) {
            size_t n = d.order.size();
            T_REQUIRE(n >= 5);
            T_EXPECT_EQ(d.order[n - 5], VDC_Write);
            T_EXPECT_EQ(d.order[n - 4], VDC_Flush);
            T_EXPECT_EQ(d.order[n - 3], VDC_Flush);
            T_EXPECT_EQ(d.order[n - 2], VDC_Flush);
            T_EXPECT_EQ(d.order[n - 1], VDC_Complete);
        }
    } else if (c == "syntax_error") {
        /* Malformed T-SQL: Msg 102 and a failing exit, before any VDI work. */
        child bad({"-b", "-Q", "BACKUP DATABSE x TO VIRTUAL_DEVICE='a'"}, {});
        std::string out;
        T_EXPECT_EQ(bad.wait(&out), 1);
        T_EXPECT(contains(out, "Msg 102, Level 15, State 1"));
        T_EXPECT(contains(out, "Incorrect syntax near 'DATABSE'."));
        child unclosed({"-Q", "backup log x to virtual_device = N'a"}, {});
        T_EXPECT_EQ(unclosed.wait(&out), 1);
        T_EXPECT(contains(out, "Msg 105"));
        child parsed({"-Q",
                      "Backup Log [a b] To Virtual_Device = N'x''y', VIRTUAL_DEVICE='z' "
                      "With BlockSize = 512, STATS = 5, CHECKSUM;",
                      "--parse-only", "-x"},
                     {});
        T_EXPECT_EQ(parsed.wait(&out), 0);
        T_EXPECT(contains(out, "statement: BACKUP LOG\ndatabase: a b\ndevice: x'y\ndevice: z\n"));
        T_EXPECT(contains(out, "blocksize: 512\n") && contains(out, "stats: 5\n"));
        T_EXPECT(contains(out, "accepted: CHECKSUM\n"));
        T_EXPECT(contains(out, "option '-x' is not supported and is ignored"));
    } else {
        fprintf(stderr, "unknown case '%s'\n", c.c_str());
        return 2;
    }
    return t_done();
}

void remove_tree(const std::string &dir) {
    DIR *d = opendir(dir.c_str());
    if (!d)
        return;
    while (struct dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            unlink((dir + "/" + e->d_name).c_str());
    closedir(d);
    rmdir(dir.c_str());
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s VDI_SQLCMD CASE\n", argv[0]);
        return 2;
    }
    sqlcmd_bin = argv[1];
    const char *tmp = getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/t-compat-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    T_REQUIRE(mkdtemp(buf.data()) != nullptr);
    work_dir = buf.data();
    int rc = run_case(argv[2]);
    remove_tree(work_dir);
    return rc;
}
