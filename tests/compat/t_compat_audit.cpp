/* t_compat_audit: libsqlvdi's audit mode (VDI_AUDIT_FILE) judges the client that uses it.
 * Each case is a client built on the SDK surface only that backs a database up through
 * vdi-sqlcmd and makes one mistake a vendor's program makes (or none: "clean"); it runs in
 * a child process with VDI_AUDIT_FILE set, and the file must name exactly the rule the
 * mistake breaks (the clean client: nothing). With the audit off, the same mistakes leave
 * no trace in the file, which is what the audit is for.
 *
 * usage: t_compat_audit VDI_SQLCMD CASE */
#include "t_compat.h"
#include "vdi/vdi_seams.h" /* the harness's side only: the name of a set's shared memory */

#include <atomic>
#include <cerrno>
#include <csignal>
#include <pthread.h>
#include <sched.h>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;
extern "C" void __lsan_disable(void) __attribute__((weak));

namespace {

const char *sqlcmd_bin;
std::string dir;
const char *shake_env; /* VDI_AUDIT_SHAKE for the client, or none */

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

/* The set the client of process pid creates. */
std::string set_of(pid_t pid) {
    return "audit-" + std::to_string(static_cast<long>(pid));
}

/* vdi-sqlcmd backing database "db" up to the set, in the background. */
pid_t start_server(const std::string &set, const char *extra_env) {
    std::string stmt = "BACKUP DATABASE db TO VIRTUAL_DEVICE='" + set + "'";
    pid_t pid = fork();
    if (pid == 0) {
        setenv("VDI_SQLCMD_DATA_DIR", dir.c_str(), 1);
        if (extra_env)
            putenv(const_cast<char *>(extra_env));
        unsetenv("VDI_AUDIT_FILE");
        execl(sqlcmd_bin, sqlcmd_bin, "-b", "-Q", stmt.c_str(), static_cast<char *>(nullptr));
        _exit(127);
    }
    return pid;
}

enum mistake {
    NONE,
    COMPLETE_TWICE,
    TOO_MANY_BYTES,
    USE_AFTER_CLOSE,
    NEVER_CLOSED,
    TOUCH_AFTER_CLOSE,
    SPIN_ON_ABORT,
    CLOSE_HOLDING,
    CONCURRENT_GET,
};

/* CONCURRENT_GET's second thread: GetCommand with no wait on the device, again and again,
 * while the client's own GetCommand waits for the (delayed) next command, until the
 * library refuses it as the second one. A command it happens to take it completes. */
struct second_getter {
    ClientVirtualDevice *dev;
    std::atomic<bool> first_returned{false};
    bool refused = false;
};

void *get_again(void *p) {
    auto *g = static_cast<second_getter *>(p);
    for (long i = 0; i < 50000000 && !g->first_returned.load(); i++) {
        VDC_Command *cmd = nullptr;
        int rc = g->dev->GetCommand(0, &cmd);
        if (rc == VD_E_PROTOCOL) {
            g->refused = true;
            break;
        }
        if (rc == NOERROR && cmd)
            (void)g->dev->CompleteCommand(
                cmd, 0, cmd->commandCode == VDC_Write ? static_cast<unsigned long>(cmd->size) : 0,
                0);
        sched_yield();
    }
    return nullptr;
}

/* The client: one device, serves writes until VD_E_CLOSE (or the mistake). */
int client(mistake m) {
    std::string set = set_of(getpid());
    auto *vds = new ClientVirtualDeviceSet();
    VDConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.deviceCount = 1;
    std::vector<char> name(set.begin(), set.end());
    name.push_back('\0');
    if (vds->Create(name.data(), &cfg) != NOERROR)
        return 10;
    pid_t server = start_server(set, m == SPIN_ON_ABORT    ? "VDI_SQLCMD_ABORT_AFTER=2"
                                     : m == CONCURRENT_GET ? "VDI_SQLCMD_DELAY_MS=300"
                                                           : nullptr);
    if (vds->GetConfiguration(8000, &cfg) != NOERROR)
        return 11;
    ClientVirtualDevice *dev = nullptr;
    if (vds->OpenDevice(name.data(), &dev) != NOERROR)
        return 12;
    uint8_t *kept_buffer = nullptr;
    unsigned n = 0;
    for (;;) {
        VDC_Command *cmd = nullptr;
        second_getter g;
        pthread_t t;
        bool second = m == CONCURRENT_GET && n == 1;
        g.dev = dev;
        if (second && pthread_create(&t, nullptr, get_again, &g) != 0)
            return 15;
        int rc = dev->GetCommand(8000, &cmd);
        if (second) {
            g.first_returned = true;
            pthread_join(t, nullptr);
            if (!g.refused)
                return 16;
        }
        if (rc == VD_E_CLOSE)
            break;
        if (rc == VD_E_ABORT && m == SPIN_ON_ABORT) {
            for (int i = 0; i < 5000; i++) /* "retry until it works" */
                (void)dev->GetCommand(0, &cmd);
            break;
        }
        if (rc != NOERROR)
            return 13;
        n++;
        if (m == CLOSE_HOLDING && n == 2) {
            (void)vds->Close(); /* holding the command just delivered */
            return 0;
        }
        unsigned long bytes =
            cmd->commandCode == VDC_Write ? static_cast<unsigned long>(cmd->size) : 0;
        if (m == TOO_MANY_BYTES && n == 1 && cmd->commandCode == VDC_Write)
            bytes = static_cast<unsigned long>(cmd->size) + 1;
        if (cmd->buffer)
            kept_buffer = cmd->buffer;
        rc = dev->CompleteCommand(cmd, 0, bytes, 0);
        if (rc == VD_E_ABORT && m == SPIN_ON_ABORT) {
            for (int i = 0; i < 5000; i++)
                (void)dev->GetCommand(0, &cmd);
            break;
        }
        if (m == TOO_MANY_BYTES && n == 1 && cmd->commandCode == VDC_Write)
            rc = dev->CompleteCommand(cmd, 0, static_cast<unsigned long>(cmd->size), 0);
        if (m == COMPLETE_TWICE && n == 1)
            (void)dev->CompleteCommand(cmd, 0, bytes, 0); /* the retry path */
        if (rc != NOERROR)
            return 14;
    }
    int status;
    if (m == NEVER_CLOSED) {
        waitpid(server, &status, 0);
        return 0; /* no Close, no delete: the process exits with the set open */
    }
    (void)vds->Close();
    waitpid(server, &status, 0);
    if (m == USE_AFTER_CLOSE) {
        VDC_Command *cmd = nullptr;
        (void)dev->GetCommand(0, &cmd);
    }
    if (m == TOUCH_AFTER_CLOSE && kept_buffer) {
        volatile uint8_t b = kept_buffer[0]; /* the audit keeps the view inaccessible */
        (void)b;
    }
    delete vds;
    delete dev;
    return 0;
}

struct outcome {
    int status;
    std::string audit;
};

outcome run(mistake m, bool audit) {
    std::string file =
        dir + "/audit-" + std::to_string(static_cast<int>(m)) + (audit ? "" : "-off");
    unlink(file.c_str());
    pid_t pid = fork();
    if (pid == 0) {
        /* The mistaken clients leak what they never closed or deleted, on purpose. */
        if (m != NONE && __lsan_disable)
            __lsan_disable();
        if (shake_env)
            setenv("VDI_AUDIT_SHAKE", shake_env, 1);
        else
            unsetenv("VDI_AUDIT_SHAKE");
        if (audit)
            setenv("VDI_AUDIT_FILE", file.c_str(), 1);
        else
            unsetenv("VDI_AUDIT_FILE");
        exit(client(m)); /* exit, not _exit: the audit's exit handler judges what is open */
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    /* What a mistaken client left open on purpose (never closed, or died touching its
     * buffer) is removed here, not left in /dev/shm; the reference names the object. */
    char shm[256];
    if (vdi_seam_shm_name(shm, sizeof shm, nullptr, set_of(pid).c_str()) == 0)
        shm_unlink(shm);
    return {st, read_all(file)};
}

bool has(const std::string &hay, const char *needle) {
    return hay.find(needle) != std::string::npos;
}

void expect_rule(mistake m, const char *rule, bool dies = false) {
    outcome on = run(m, true);
    if (dies)
        T_EXPECT(WIFSIGNALED(on.status) && WTERMSIG(on.status) == SIGSEGV);
    else
        T_EXPECT(WIFEXITED(on.status) && WEXITSTATUS(on.status) == 0);
    if (getenv("T_AUDIT_SHOW")) /* to read what a user reads */
        fprintf(stderr, "%s", on.audit.c_str());
    if (!has(on.audit, rule))
        fprintf(stderr, "want '%s', the audit file says:\n%s\n", rule, on.audit.c_str());
    T_EXPECT(has(on.audit, rule));
    /* each finding comes with the client's stack */
    T_EXPECT(has(on.audit, "    #0 "));
    outcome off = run(m, false);
    T_EXPECT(off.audit.empty());
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: t_compat_audit VDI_SQLCMD CASE\n");
        return 2;
    }
    sqlcmd_bin = argv[1];
    std::string c = argv[2];
    const char *tmp = getenv("TMPDIR");
    std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/t-compat-audit-XXXXXX";
    std::vector<char> tv(t.begin(), t.end());
    tv.push_back('\0');
    if (!mkdtemp(tv.data()))
        return 1;
    dir = tv.data();
    if (c == "clean") {
        outcome o = run(NONE, true);
        T_EXPECT(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
        if (!o.audit.empty())
            fprintf(stderr, "a correct client, yet:\n%s\n", o.audit.c_str());
        T_EXPECT(o.audit.empty());
    } else if (c == "shake") {
        /* the clean client (one thread) shaken: yields and sleeps happen, no finding */
        shake_env = "7:200";
        outcome o = run(NONE, true);
        T_EXPECT(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
        unsigned long long pts = 0, ys = 0, sl = 0, th = 0;
        size_t at = o.audit.find("vdi-shake 7:200: ");
        T_REQUIRE(at != std::string::npos);
        T_EXPECT_EQ(sscanf(o.audit.c_str() + at,
                           "vdi-shake 7:200: %llu points, %llu yields, %llu sleeps, %llu threads",
                           &pts, &ys, &sl, &th),
                    4);
        if (!(pts > 0 && ys > 0 && sl > 0 && ys + sl < pts && th >= 1))
            fprintf(stderr, "the shake line: %s\n", o.audit.c_str() + at);
        T_EXPECT(pts > 0 && ys > 0 && sl > 0 && ys + sl < pts && th >= 1);
        T_EXPECT(!has(o.audit, "vdi-audit "));
        shake_env = "0:5"; /* no seed: reported, not shaken */
        o = run(NONE, true);
        T_EXPECT(has(o.audit, "vdi-audit usage shake: VDI_AUDIT_SHAKE='0:5'"));
        T_EXPECT(!has(o.audit, "vdi-shake"));
        shake_env = "5:2000000";
        o = run(NONE, true);
        T_EXPECT(has(o.audit, "vdi-audit usage shake"));
    } else if (c == "complete_twice") {
        expect_rule(COMPLETE_TWICE, "protocol complete-unknown: set 'audit-");
    } else if (c == "too_many_bytes") {
        expect_rule(TOO_MANY_BYTES, "protocol complete-too-many");
    } else if (c == "use_after_close") {
        expect_rule(USE_AFTER_CLOSE, "protocol call-after-close: GetCommand");
    } else if (c == "never_closed") {
        expect_rule(NEVER_CLOSED, "protocol never-closed");
    } else if (c == "touch_after_close") {
        expect_rule(TOUCH_AFTER_CLOSE, "use-after-close: the client touched", true);
    } else if (c == "spin_on_abort") {
        expect_rule(SPIN_ON_ABORT, "protocol busy-loop");
    } else if (c == "close_holding") {
        expect_rule(CLOSE_HOLDING, "protocol close-holding");
    } else if (c == "concurrent_get") {
        expect_rule(CONCURRENT_GET, "protocol concurrent-get: set 'audit-");
    } else {
        fprintf(stderr, "no case '%s'\n", c.c_str());
        return 2;
    }
    std::string rm = "rm -rf '" + dir + "'";
    if (system(rm.c_str()) != 0)
        fprintf(stderr, "could not remove %s\n", dir.c_str());
    return t_done();
}
