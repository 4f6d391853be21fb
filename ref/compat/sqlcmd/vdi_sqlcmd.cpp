/* vdi-sqlcmd: a stand-in for sqlcmd that runs BACKUP and RESTORE statements to virtual
 * devices by playing SQL Server's side of VDI on the reference, so that a Linux VDI
 * client can be tested without a SQL Server. It takes the sqlcmd options clients pass,
 * prints SQL Server's messages and exits as sqlcmd does; its chaos knobs (options or
 * environment) make the server misbehave in the ways a client must survive. */
#include "media.h"
#include "plan.h"
#include "session.h"
#include "tsql.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

const char usage_text[] =
    "usage: vdi-sqlcmd [-S server] [-U user] [-P password] [-E] [-d database] [-b]\n"
    "                  (-Q \"statement\" | -i file) [vdichaos options]\n"
    "Runs one BACKUP or RESTORE statement to VIRTUAL_DEVICE = '...' by playing SQL Server\n"
    "on the vdichaos reference VDI. The first VIRTUAL_DEVICE names the set the client\n"
    "created; the database is an image file in the data directory (generated from its name\n"
    "when missing); RESTORE writes NAME.restored.mdf there and checks it against NAME.mdf.\n"
    "Exit status: 0, or 1 after a syntax or usage error, and with -b after any error.\n"
    "\n"
    "vdichaos options (each also read from the environment variable shown):\n"
    "  --data-dir DIR        VDI_SQLCMD_DATA_DIR   images (default $TMPDIR/vdi-sqlcmd-UID)\n"
    "  --db-size BYTES       VDI_SQLCMD_DB_SIZE    size of a generated image (at most 4 GiB)\n"
    "  --timeout MS          VDI_SQLCMD_TIMEOUT    wait for the set / each completion (60000)\n"
    "  --abort-after N       VDI_SQLCMD_ABORT_AFTER  SignalAbort after N completed commands\n"
    "  --close-after N       VDI_SQLCMD_CLOSE_AFTER  Close the set, devices still open, after N\n"
    "  --delay MS            VDI_SQLCMD_DELAY_MS   wait MS before sending each command\n"
    "  --fail-command N:CODE VDI_SQLCMD_FAIL_COMMAND take completion N as failed with CODE\n"
    "  --die-at POINT        VDI_SQLCMD_DIE_AT     open | configured | command:N | end | writing\n"
    "  --die-how HOW         VDI_SQLCMD_DIE_HOW    exit (_exit 99) | abort | kill | term\n"
    "  --flushes N           VDI_SQLCMD_FLUSHES    VDC_Flush per device after a backup (1)\n"
    "  --complete WHEN       VDI_SQLCMD_COMPLETE   VDC_Complete: auto | always | never\n"
    "  --plan FILE           VDI_SQLCMD_PLAN       play a server plan (PLAN.md); its steps\n"
    "                                              override the statement's WITH options\n"
    "  --report FILE         VDI_SQLCMD_REPORT     append what the session did to FILE\n"
    "  --parse-only          print the parsed statement and exit\n"
    "  --help | --version    this text | the version\n"
    "The default data directory must be yours and not writable by group or others;\n"
    "vdi-sqlcmd refuses it otherwise. Temporary files of a restore are removed when a\n"
    "signal ends it, and those a killed run left are removed by the next run.\n";

struct options {
    std::string server = "vdi-sqlcmd";
    std::string query;
    bool have_query = false;
    bool fail_exit = false; /* -b */
    bool parse_only = false;
    std::string plan_path, report_path;
    sqlcmd_config cfg;
};

[[noreturn]] void usage_error(const std::string &msg) {
    fprintf(stderr, "Sqlcmd: %s. Enter 'vdi-sqlcmd --help' for help.\n", msg.c_str());
    exit(1);
}

long to_long(const std::string &what, const std::string &v, long lo) {
    char *end = nullptr;
    errno = 0;
    long n = strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || n < lo)
        usage_error(what + ": '" + v + "' is not a number from " + std::to_string(lo));
    return n;
}

uint64_t to_db_size(const std::string &what, const std::string &v) {
    long n = to_long(what, v, 1);
    if (static_cast<uint64_t>(n) > media_max_image)
        usage_error(what + ": '" + v + "' is more than " + std::to_string(media_max_image) +
                    " bytes (4 GiB), the largest image vdi-sqlcmd makes");
    return static_cast<uint64_t>(n);
}

bool read_file(const std::string &path, std::string *out) {
    FILE *f = fopen(path.c_str(), "rb");
    if (!f)
        return false;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        out->append(buf, n);
    fclose(f);
    return true;
}

/* A script file may end its batch with GO on a line of its own. */
std::string strip_go(const std::string &text) {
    std::string out, line;
    size_t i = 0;
    while (i <= text.size()) {
        size_t nl = text.find('\n', i);
        line = text.substr(i, nl == std::string::npos ? std::string::npos : nl - i);
        std::string t = line;
        while (!t.empty() && isspace(static_cast<unsigned char>(t.back())))
            t.pop_back();
        size_t b = t.find_first_not_of(" \t");
        t = b == std::string::npos ? "" : t.substr(b);
        bool go = t.size() == 2 && toupper(t[0]) == 'G' && toupper(t[1]) == 'O';
        out += go ? "" : line;
        out += '\n';
        if (nl == std::string::npos)
            break;
        i = nl + 1;
    }
    return out;
}

void set_knob(sqlcmd_knobs *k, const std::string &name, const std::string &v) {
    if (name == "timeout") {
        k->timeout_ms = to_long("--timeout", v, -1);
    } else if (name == "abort-after") {
        k->abort_after = to_long("--abort-after", v, 1);
    } else if (name == "close-after") {
        k->close_after = to_long("--close-after", v, 1);
    } else if (name == "delay") {
        k->delay_ms = to_long("--delay", v, 0);
    } else if (name == "fail-command") {
        size_t colon = v.find(':');
        if (colon == std::string::npos)
            usage_error("--fail-command: '" + v + "' is not N:CODE");
        k->fail_at = to_long("--fail-command", v.substr(0, colon), 1);
        k->fail_code = static_cast<uint32_t>(to_long("--fail-command", v.substr(colon + 1), 1));
    } else if (name == "die-at") {
        if (v == "open") {
            k->die_at = sqlcmd_knobs::DIE_OPEN;
        } else if (v == "configured") {
            k->die_at = sqlcmd_knobs::DIE_CONFIGURED;
        } else if (v == "end") {
            k->die_at = sqlcmd_knobs::DIE_END;
        } else if (v == "writing") {
            k->die_at = sqlcmd_knobs::DIE_WRITING;
        } else if (v.rfind("command:", 0) == 0) {
            k->die_at = sqlcmd_knobs::DIE_COMMAND;
            k->die_command = to_long("--die-at", v.substr(8), 1);
        } else {
            usage_error("--die-at: '" + v + "' is not open, configured, command:N, end or writing");
        }
    } else if (name == "die-how") {
        if (v == "exit")
            k->die_how = sqlcmd_knobs::DIE_EXIT;
        else if (v == "abort")
            k->die_how = sqlcmd_knobs::DIE_ABORT;
        else if (v == "kill")
            k->die_how = sqlcmd_knobs::DIE_KILL;
        else if (v == "term")
            k->die_how = sqlcmd_knobs::DIE_TERM;
        else
            usage_error("--die-how: '" + v + "' is not exit, abort, kill or term");
    } else if (name == "flushes") {
        k->flushes = static_cast<int>(to_long("--flushes", v, 0));
    } else if (name == "complete") {
        if (v == "auto")
            k->complete = -1;
        else if (v == "always")
            k->complete = 1;
        else if (v == "never")
            k->complete = 0;
        else
            usage_error("--complete: '" + v + "' is not auto, always or never");
    }
}

const char *const knob_names[] = {"timeout", "abort-after",  "close-after",
                                  "delay",   "fail-command", "die-at",
                                  "die-how", "flushes",      "complete"};

std::string env_name(const std::string &knob) {
    std::string e = "VDI_SQLCMD_";
    for (char c : knob == "delay" ? std::string("delay-ms") : knob)
        e.push_back(c == '-' ? '_' : static_cast<char>(toupper(c)));
    return e;
}

/* sqlcmd's options that take a value; anything else unknown is a flag. */
bool takes_value(char c) {
    return strchr("acdfHhiKlLMoPQqSstUvwyYzZ", c) != nullptr;
}

void parse_args(int argc, char **argv, options *o) {
    for (const char *knob : knob_names) {
        const char *v = getenv(env_name(knob).c_str());
        if (v && *v)
            set_knob(&o->cfg.knobs, knob, v);
    }
    if (const char *v = getenv("VDI_SQLCMD_DATA_DIR"))
        o->cfg.data_dir = v;
    if (const char *v = getenv("VDI_SQLCMD_DB_SIZE"))
        o->cfg.db_size = to_db_size("VDI_SQLCMD_DB_SIZE", v);
    if (const char *v = getenv("VDI_SQLCMD_PLAN"))
        o->plan_path = v;
    if (const char *v = getenv("VDI_SQLCMD_REPORT"))
        o->report_path = v;
    std::string script;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0) {
            std::string name = a.substr(2), val;
            size_t eq = name.find('=');
            bool inline_val = eq != std::string::npos;
            if (inline_val) {
                val = name.substr(eq + 1);
                name = name.substr(0, eq);
            }
            if (name == "help") {
                fputs(usage_text, stdout);
                exit(0);
            }
            if (name == "version" && !inline_val) {
                printf("vdi-sqlcmd %s\n", VDICHAOS_VERSION);
                exit(0);
            }
            if (name == "parse-only") {
                o->parse_only = true;
                continue;
            }
            if (!inline_val) {
                if (i + 1 >= argc)
                    usage_error("'--" + name + "': Missing argument");
                val = argv[++i];
            }
            bool known =
                name == "data-dir" || name == "db-size" || name == "plan" || name == "report";
            for (const char *knob : knob_names)
                known |= name == knob;
            if (!known)
                usage_error("'--" + name + "': Unknown option");
            if (name == "plan")
                o->plan_path = val;
            else if (name == "report")
                o->report_path = val;
            else if (name == "data-dir")
                o->cfg.data_dir = val;
            else if (name == "db-size")
                o->cfg.db_size = to_db_size("--db-size", val);
            else
                set_knob(&o->cfg.knobs, name, val);
            continue;
        }
        if (a.size() < 2 || (a[0] != '-' && a[0] != '/'))
            usage_error("'" + a + "': Unexpected argument");
        char c = a[1];
        if (c == '?') {
            fputs(usage_text, stdout);
            exit(0);
        }
        std::string val;
        if (takes_value(c)) {
            if (a.size() > 2)
                val = a.substr(2);
            else if (i + 1 < argc)
                val = argv[++i];
            else
                usage_error(std::string("'-") + c + "': Missing argument");
        }
        switch (c) {
        case 'S':
            o->server = val;
            break;
        case 'Q':
        case 'q':
            o->query = val;
            o->have_query = true;
            break;
        case 'i':
            if (!read_file(val, &script))
                usage_error("'-i " + val + "': " + strerror(errno));
            o->query = strip_go(script);
            o->have_query = true;
            break;
        case 'b':
            o->fail_exit = true;
            break;
        case 'U':
        case 'P':
        case 'd':
        case 'E':
            break; /* accepted: the reference needs no login, and BACKUP names its database */
        default:
            fprintf(stderr, "vdi-sqlcmd: warning: option '-%c' is not supported and is ignored\n",
                    c);
        }
    }
    if (!o->have_query)
        usage_error("'-Q': Missing argument (vdi-sqlcmd runs one statement from -Q or -i)");
}

/* Why the default data directory cannot be trusted ("" when it can): like ssh with a key,
 * a directory another user owns or may write could hold a planted image or read ours. */
std::string untrusted_dir(const std::string &dir) {
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0)
        return strerror(errno);
    if (S_ISLNK(st.st_mode))
        return "it is a symbolic link";
    if (!S_ISDIR(st.st_mode))
        return "it is not a directory";
    if (st.st_uid != geteuid())
        return "it is owned by uid " + std::to_string(static_cast<unsigned long>(st.st_uid)) +
               ", not by you";
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return std::string("it is writable by group or others (mode ") + mode + ")";
    }
    return "";
}

/* A signal that ends vdi-sqlcmd first removes the restore's temporary file. */
void on_fatal_signal(int sig) {
    media_remove_partial_on_signal();
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_signal_cleanup() {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE})
        sigaction(sig, &sa, nullptr);
}

std::string default_data_dir() {
    const char *tmp = getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/tmp";
    return base + "/vdi-sqlcmd-" + std::to_string(static_cast<unsigned long>(getuid()));
}

void print_parsed(const tsql_statement &st) {
    printf("statement: %s\n", tsql_verb(st).c_str());
    printf("database: %s\n", st.database.c_str());
    for (const auto &d : st.devices)
        printf("device: %s\n", d.c_str());
    printf("blocksize: %u\nbuffercount: %u\nmaxtransfersize: %u\n", st.block_size, st.buffer_count,
           st.max_transfer);
    printf("format: %d\ninit: %d\nreplace: %d\nstats: %d\n", st.format, st.init, st.replace,
           st.stats);
    for (const auto &a : st.accepted)
        printf("accepted: %s\n", a.c_str());
}

/* A plan's steps over the statement and the knobs. Lines the parser cannot read are
 * skipped with a warning, so any file plays (a fuzzer mutates them). */
void apply_plan(const std::string &path, tsql_statement *st, sqlcmd_config *cfg) {
    std::string text;
    if (!read_file(path, &text))
        usage_error("'--plan " + path + "': " + strerror(errno));
    static vdi_plan p; /* 30 KB: not on the stack */
    char err[200];
    int skipped = vdi_plan_parse(text.data(), text.size(), 0, &p, err, sizeof err);
    if (skipped > 0)
        fprintf(stderr, "vdi-sqlcmd: plan %s: %d line(s) skipped; the first: %s\n", path.c_str(),
                skipped, err);
    if (p.block_size)
        st->block_size = p.block_size;
    if (p.max_transfer)
        st->max_transfer = p.max_transfer;
    if (p.buffer_count)
        st->buffer_count = p.buffer_count;
    sqlcmd_knobs &k = cfg->knobs;
    if (p.db_size)
        cfg->db_size = p.db_size;
    if (p.timeout_ms)
        k.timeout_ms = p.timeout_ms;
    if (p.delay_ms)
        k.delay_ms = p.delay_ms;
    if (p.flushes >= 0)
        k.flushes = p.flushes;
    if (p.complete >= 0)
        k.complete = p.complete;
    memcpy(k.transfer, p.transfer, sizeof k.transfer);
    memcpy(k.reverse, p.reverse, sizeof k.reverse);
    for (uint32_t i = 0; i < p.nfaults; i++)
        k.faults.push_back(p.faults[i]);
}

/* The report a harness reads: appended lines, the set first (a killed run leaves that). */
void report(const std::string &path, const std::string &lines) {
    if (path.empty())
        return;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ssize_t n = write(fd, lines.data(), lines.size());
    if (n != static_cast<ssize_t>(lines.size()))
        fprintf(stderr, "vdi-sqlcmd: cannot write the report %s\n", path.c_str());
    close(fd);
}

int run(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);
    sqlcmd_knobs_to_faults(&o.cfg.knobs);
    sqlcmd_output out(o.server);
    tsql_statement st;
    tsql_error err;
    if (!tsql_parse(o.query, &st, &err)) {
        out.error(err);
        return 1; /* stricter than sqlcmd: a malformed statement never passes silently */
    }
    if (!o.plan_path.empty())
        apply_plan(o.plan_path, &st, &o.cfg);
    if (o.parse_only) {
        print_parsed(st);
        return 0;
    }
    report(o.report_path, "set " + st.devices[0] + "\n" + (st.restore ? "restore " : "backup ") +
                              st.database + "\n");
    if (o.cfg.data_dir.empty()) {
        o.cfg.data_dir = default_data_dir();
        if (mkdir(o.cfg.data_dir.c_str(), 0700) != 0 && errno != EEXIST)
            usage_error("cannot create " + o.cfg.data_dir + ": " + strerror(errno));
        std::string why = untrusted_dir(o.cfg.data_dir);
        if (!why.empty()) {
            fprintf(stderr,
                    "vdi-sqlcmd: refusing the default data directory %s: %s. Remove it, or "
                    "choose a directory with --data-dir or VDI_SQLCMD_DATA_DIR.\n",
                    o.cfg.data_dir.c_str(), why.c_str());
            return 1;
        }
    }
    install_signal_cleanup();
    for (const auto &name : media_remove_stale_partials(o.cfg.data_dir))
        fprintf(stderr, "vdi-sqlcmd: removed %s/%s, left by a run that was killed\n",
                o.cfg.data_dir.c_str(), name.c_str());
    sqlcmd_result res;
    bool ok = sqlcmd_run(st, o.cfg, &out, &res);
    report(o.report_path, "sent " + std::to_string(res.sent) + "\ncompleted " +
                              std::to_string(res.completed) + "\noutcome " +
                              (ok ? "success" : "failed") + "\n");
    if (const char *w = getenv("VDI_SQLCMD_REPORT_WORK"); w && strcmp(w, "1") == 0)
        fprintf(stderr, "vdi-sqlcmd: work: %llu image bytes checksummed\n",
                static_cast<unsigned long long>(media_checksum_bytes()));
    if (ok)
        return 0;
    tsql_error end;
    end.number = 3013;
    end.line = st.line;
    end.text = tsql_verb(st) + " is terminating abnormally.";
    out.error(end);
    return o.fail_exit ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        fprintf(stderr, "vdi-sqlcmd: %s\n", e.what());
        return 1;
    }
}
