/* session.cpp: the server side of one BACKUP or RESTORE, on the reference C API. Each
 * device has a thread that keeps up to its share of BUFFERCOUNT commands in flight; the
 * completion routine (on the agent's thread) only queues the finished command for its
 * device thread, which does all the work. Any failure aborts the set, as SQL Server does. */
#include "session.h"

#include "media.h"
#include "vdi/vdi.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/resource.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

void sqlcmd_output::line(const std::string &text) {
    std::lock_guard<std::mutex> lk(mu_);
    fprintf(stdout, "%s\n", text.c_str());
    fflush(stdout);
}

void sqlcmd_output::error(const tsql_error &e) {
    std::lock_guard<std::mutex> lk(mu_);
    fprintf(stdout, "Msg %d, Level %d, State %d, Server %s, Line %d\n%s\n", e.number, e.level,
            e.state, server_.c_str(), e.line, e.text.c_str());
    fflush(stdout);
}

namespace {

constexpr uint32_t default_block = 65536;
constexpr uint32_t default_transfer = 1048576;
constexpr uint32_t default_buffers_per_device = 3;
constexpr unsigned ring_cap = 2 * VDI_MAX_OUTSTANDING + 2;

double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/* The text Windows gives the codes a client is likely to report. */
std::string win32_text(uint32_t code) {
    switch (code) {
    case 0:
        return "The operation completed successfully.";
    case 6:
        return "The handle is invalid.";
    case 38:
        return "Reached the end of the file.";
    case 39:
        return "The disk is full.";
    case 50:
        return "The request is not supported.";
    case 87:
        return "The parameter is incorrect.";
    case 112:
        return "There is not enough space on the disk.";
    case 995:
        return "The I/O operation has been aborted because of either a thread exit or an "
               "application request.";
    case 1117:
        return "The request could not be performed because of an I/O device error.";
    default:
        return "Unknown error.";
    }
}

std::string hex_code(int rc) {
    char b[16];
    snprintf(b, sizeof b, "0x%08x", static_cast<unsigned>(rc));
    return b;
}

[[noreturn]] void die_with(uint8_t how, const char *where) {
    fprintf(stderr, "vdi-sqlcmd: chaos: dying %s\n", where);
    if (how == VDI_PLAN_KILL)
        raise(SIGKILL);
    if (how == VDI_PLAN_TERM) {
        raise(SIGTERM); /* the handler vdi-sqlcmd installed, then the default action */
        _exit(128 + SIGTERM);
    }
    if (how == VDI_PLAN_SIGABRT) {
        struct rlimit none = {0, 0}; /* a crash to observe, not a core file to keep */
        setrlimit(RLIMIT_CORE, &none);
        abort();
    }
    _exit(99);
}

uint8_t plan_how(enum sqlcmd_knobs::die_how how) {
    switch (how) {
    case sqlcmd_knobs::DIE_KILL:
        return VDI_PLAN_KILL;
    case sqlcmd_knobs::DIE_ABORT:
        return VDI_PLAN_SIGABRT;
    case sqlcmd_knobs::DIE_TERM:
        return VDI_PLAN_TERM;
    default:
        return VDI_PLAN_EXIT;
    }
}

[[noreturn]] void die(const sqlcmd_knobs &k, const char *where) {
    die_with(plan_how(k.die_how), where);
}

class session;

/* OP_HEADER: the device's first block (a backup writes the media header in it; a restore
 * reads it, and with it the data that follows when its block is larger than the backup's).
 * OP_DATA: the next bytes of the device's stream. OP_PAD: a backup's zero blocks after the
 * data, up to the stream's end (a multiple of media_stream_align). */
enum op_kind { OP_HEADER, OP_DATA, OP_PAD, OP_CONTROL };

struct op {
    op_kind kind;
    int32_t code;
    int64_t pos;      /* position on the device: the stream offset, every op contiguous */
    uint32_t len;     /* bytes transferred (data commands): whole blocks */
    uint64_t img_off; /* backup OP_DATA: offset in the image */
    uint32_t img_len; /* backup OP_DATA: image bytes in it (the rest of len is zeros) */
};

struct device;

struct slot {
    VDS_Command cmd;
    device *d;
    uint8_t *buf;
    op what;
    bool busy;
    bool queued; /* the routine ran (under d->mu) */
};

struct device {
    session *s;
    size_t index;
    std::string name;
    vdi_server_device *dev = nullptr;
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    slot *ring[ring_cap]; /* completed slots, queued by the routine */
    unsigned head = 0, tail = 0;
    std::vector<slot> slots;      /* sized once: the VDS_Commands never move */
    unsigned inflight = 0;        /* this device's thread only */
    long sent = 0, completed = 0; /* this device's thread only */
    std::vector<uint8_t> first;   /* restore: the stream's first block, header included */
    media_header hdr;             /* restore: the stripe's media header, once decoded */
};

enum stop_kind { RUNNING = 0, STOP_ABORT = 1, STOP_CLOSE = 2 };

class session {
  public:
    session(const tsql_statement &st, const sqlcmd_config &cfg, sqlcmd_output *out)
        : st_(st), cfg_(cfg), k_(cfg.knobs), out_(out) {}
    ~session() {
        if (set_)
            vdi_server_set_free(set_);
    }
    bool run();
    static void on_done(VDS_Command *cmd);
    long sent() const {
        return sent_.load();
    }
    long completed() const {
        return completed_.load();
    }

  private:
    void fail(int number, const std::string &text);
    void fail_vdi(const std::string &what, int rc);
    void stop(stop_kind why);
    bool stopped() const {
        return stop_.load() != RUNNING;
    }
    bool open_set();
    bool configure();
    bool start_agent();
    void device_main(device *d);
    bool run_ops(device *d, const std::vector<op> &ops, unsigned window);
    bool send(device *d, slot *sl);
    slot *wait_done(device *d, bool until_stopped);
    bool handle(device *d, slot *sl);
    bool restore_header(device *d, std::vector<op> *ops);
    uint64_t restore_data(const device *d, uint64_t pos, const uint8_t *buf, uint64_t len);
    void progress(uint64_t bytes);
    bool finish_restore();
    std::string verb_noun() const {
        return st_.restore ? "Read" : "Write";
    }
    /* The count fault f is judged on: the session's, or its device's. -1: not this device. */
    long count_for(const vdi_plan_fault &f, const device *d, long global, long local) const {
        if (f.device < 0)
            return global;
        return static_cast<size_t>(f.device) == d->index ? local : -1;
    }
    bool fire_once(size_t i) {
        return !fired_[i].exchange(true);
    }
    void die_at_point(uint8_t point, const char *where);
    bool before_send(device *d);
    bool wait_stopped(device *d, long ms);
    void shape_ops(device *d, std::vector<op> *ops);

    const tsql_statement &st_;
    const sqlcmd_config &cfg_;
    const sqlcmd_knobs &k_;
    sqlcmd_output *out_;
    vdi_server_set *set_ = nullptr;
    bool set_closed_ = false;
    uint32_t block_ = default_block, transfer_ = default_transfer, per_device_ = 1;
    bool send_complete_ = false;
    std::vector<std::unique_ptr<device>> devs_;
    std::thread agent_;
    int agent_rc_ = NOERROR;
    std::atomic<int> stop_{RUNNING};
    std::atomic<long> sent_{0}, completed_{0};
    std::unique_ptr<std::atomic<bool>[]> fired_ { new std::atomic<bool>[ k_.faults.size() + 1 ]() };
    uint32_t client_features_ = 0;
    std::mutex fail_mu_;
    bool failed_ = false;

    std::vector<uint8_t> image_; /* backup: the source; restore: what comes back */
    uint64_t image_sum_ = 0;     /* backup: media_checksum of image_, once for every device */
    media_header master_;        /* restore: the first stripe's header */
    bool have_master_ = false;
    std::vector<bool> stripe_seen_;
    std::mutex hdr_mu_;
    std::mutex progress_mu_;
    uint64_t done_bytes_ = 0;
    int next_percent_ = 0;
};

void session::fail(int number, const std::string &text) {
    {
        std::lock_guard<std::mutex> lk(fail_mu_);
        if (failed_)
            return; /* the first failure is the story; the rest are its consequences */
        failed_ = true;
    }
    tsql_error e;
    e.number = number;
    e.line = st_.line;
    e.text = text;
    out_->error(e);
}

void session::fail_vdi(const std::string &what, int rc) {
    fail(3201, "Cannot open backup device '" + st_.devices[0] + "'. " + what +
                   " failed: " + hex_code(rc) + " (" + vdi_strerror(rc) + ").");
}

/* Stops every device thread; an abort also aborts the set (its drain wakes them), a
 * premature close leaves the set alone: run() closes it once every thread is out. */
void session::stop(stop_kind why) {
    int expected = RUNNING;
    if (!stop_.compare_exchange_strong(expected, why))
        return;
    if (why == STOP_ABORT)
        (void)vdi_server_set_signal_abort(set_);
    for (auto &d : devs_) {
        std::lock_guard<std::mutex> lk(d->mu);
        d->cv.notify_all();
    }
}

void session::on_done(VDS_Command *cmd) {
    auto *sl = static_cast<slot *>(cmd->completionContext);
    device *d = sl->d;
    std::lock_guard<std::mutex> lk(d->mu);
    sl->queued = true;
    d->ring[d->tail++ % ring_cap] = sl;
    d->cv.notify_all();
}

/* The set exists once the client created it; retry for a while in case the client starts
 * this program first. */
bool session::open_set() {
    set_ = vdi_server_set_new();
    if (!set_) {
        fail(701, "There is insufficient system memory to run this query.");
        return false;
    }
    double start = now_s();
    for (;;) {
        int rc = vdi_server_set_open(set_, nullptr, st_.devices[0].c_str());
        if (rc == NOERROR)
            return true;
        bool waited_out =
            k_.timeout_ms >= 0 && (now_s() - start) * 1000.0 >= static_cast<double>(k_.timeout_ms);
        if (rc != VD_E_INVALID || waited_out) {
            fail(3201, "Cannot open backup device '" + st_.devices[0] +
                           "'. Operating system error " + hex_code(rc) + "(" + vdi_strerror(rc) +
                           (rc == VD_E_INVALID ? ": no virtual device set of that name" : "") +
                           ").");
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

bool session::configure() {
    VDConfig cfg;
    int rc = vdi_server_set_get_configuration(set_, &cfg);
    if (rc != NOERROR) {
        fail_vdi("GetConfiguration", rc);
        return false;
    }
    size_t n = st_.devices.size();
    if (cfg.deviceCount != n) {
        fail(3201, "Cannot open backup device '" + st_.devices[0] +
                       "'. The virtual device set was created with " +
                       std::to_string(cfg.deviceCount) + " device(s); the statement names " +
                       std::to_string(n) + ".");
        return false;
    }
    if (st_.block_size)
        block_ = st_.block_size;
    if (st_.max_transfer)
        transfer_ = st_.max_transfer;
    uint32_t total =
        st_.buffer_count ? st_.buffer_count : static_cast<uint32_t>(n) * default_buffers_per_device;
    per_device_ = (total + static_cast<uint32_t>(n) - 1) / static_cast<uint32_t>(n);
    if (per_device_ > VDI_MAX_OUTSTANDING)
        per_device_ = VDI_MAX_OUTSTANDING;
    client_features_ = cfg.features;
    uint32_t features = st_.restore ? VDF_ReadMedia : VDF_WriteMedia | VDF_CompleteEnabled;
    bool negotiated = !st_.restore && (cfg.features & VDF_RequestComplete);
    send_complete_ = k_.complete == 1 || (k_.complete == -1 && negotiated);
    rc = vdi_server_set_begin_configuration(set_, features, block_, 0, transfer_, k_.timeout_ms);
    if (rc == NOERROR)
        rc = vdi_server_set_request_buffers(set_, transfer_, 0,
                                            per_device_ * static_cast<uint32_t>(n));
    if (rc == NOERROR)
        rc = vdi_server_set_end_configuration(set_);
    if (rc == VD_E_MEMORY) {
        fail(701, "There is insufficient system memory in resource pool 'default' to run this "
                  "query (BUFFERCOUNT x MAXTRANSFERSIZE).");
        return false;
    }
    if (rc != NOERROR) {
        fail_vdi("Configuring the virtual device set", rc);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        auto d = std::make_unique<device>();
        d->s = this;
        d->index = i;
        d->name = st_.devices[i];
        d->slots.resize(per_device_);
        for (auto &sl : d->slots) {
            sl = slot{};
            sl.d = d.get();
        }
        devs_.push_back(std::move(d));
    }
    for (auto &d : devs_) {
        rc = vdi_server_set_open_device(set_, d->name.c_str(), &d->dev);
        if (rc != NOERROR) {
            fail(3201, "Cannot open backup device '" + d->name + "'. Operating system error " +
                           hex_code(rc) + "(" + vdi_strerror(rc) + ").");
            return false;
        }
        for (auto &sl : d->slots) {
            rc = vdi_server_set_allocate_buffer(set_, &sl.buf, transfer_, 0);
            if (rc != NOERROR) {
                fail_vdi("AllocateBuffer", rc);
                return false;
            }
        }
    }
    return true;
}

void ignore_routine(VDS_Command *) {}

/* Nothing tells when the agent runs: a malformed command (code 999) is answered
 * VD_E_PROTOCOL while none runs and VD_E_INVALID once one does, queuing nothing. */
bool session::start_agent() {
    agent_ = std::thread([this] { agent_rc_ = vdi_server_set_execute_completion_agent(set_); });
    for (int tries = 0; tries < 5000; tries++) {
        VDS_Command probe;
        memset(&probe, 0, sizeof probe);
        probe.commandCode = 999;
        probe.completionRoutine = ignore_routine;
        int rc = vdi_server_device_send_command(devs_[0]->dev, &probe);
        if (rc == VD_E_INVALID)
            return true;
        if (rc != VD_E_PROTOCOL) {
            fail_vdi("Starting the completion agent", rc);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    fail(3201, "The completion agent did not start.");
    return false;
}

/* Waits up to ms (forever when negative) for the session to stop; true when it did. */
bool session::wait_stopped(device *d, long ms) {
    std::unique_lock<std::mutex> lk(d->mu);
    auto pred = [this] { return stopped(); };
    if (ms < 0) {
        d->cv.wait(lk, pred);
        return true;
    }
    return d->cv.wait_for(lk, std::chrono::milliseconds(ms), pred);
}

void session::die_at_point(uint8_t point, const char *where) {
    for (size_t i = 0; i < k_.faults.size(); i++) {
        const vdi_plan_fault &f = k_.faults[i];
        if (f.kind == VDI_PLAN_DIE && f.point == point)
            die_with(f.how, where);
    }
}

/* The plan's pauses and stalls, before the device's next command; false: do not send. */
bool session::before_send(device *d) {
    for (size_t i = 0; i < k_.faults.size(); i++) {
        const vdi_plan_fault &f = k_.faults[i];
        if (f.kind != VDI_PLAN_PAUSE && f.kind != VDI_PLAN_STALL)
            continue;
        if (count_for(f, d, sent_.load(), d->sent) != static_cast<long>(f.after) || !fire_once(i))
            continue;
        if (f.kind == VDI_PLAN_PAUSE) {
            fprintf(stderr, "vdi-sqlcmd: chaos: pausing %u ms after %u commands\n", f.ms, f.after);
            if (wait_stopped(d, f.ms))
                return false;
            continue;
        }
        fprintf(stderr, "vdi-sqlcmd: chaos: device '%s' stalls after %u commands\n",
                d->name.c_str(), f.after);
        if (wait_stopped(d, k_.timeout_ms))
            return false;
        fail(st_.restore ? 3203 : 3202,
             verb_noun() + " on \"" + d->name + "\" failed: the device stalled for " +
                 std::to_string(k_.timeout_ms) + " ms (chaos: stall after " +
                 std::to_string(f.after) + ").");
        stop(STOP_ABORT);
        return false;
    }
    return true;
}

bool session::send(device *d, slot *sl) {
    if (k_.delay_ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(k_.delay_ms));
    if (stopped() || !before_send(d))
        return false;
    memset(&sl->cmd, 0, sizeof sl->cmd);
    sl->cmd.commandCode = sl->what.code;
    sl->cmd.size = static_cast<int32_t>(sl->what.len);
    sl->cmd.inPosition = sl->what.pos;
    sl->cmd.buffer = sl->what.kind == OP_CONTROL ? nullptr : sl->buf;
    sl->cmd.completionRoutine = on_done;
    sl->cmd.completionContext = sl;
    if (!st_.restore && sl->what.kind == OP_DATA) {
        memcpy(sl->buf, image_.data() + sl->what.img_off, sl->what.img_len);
        memset(sl->buf + sl->what.img_len, 0, sl->what.len - sl->what.img_len);
    }
    if (!st_.restore && sl->what.kind == OP_PAD)
        memset(sl->buf, 0, sl->what.len);
    if (!st_.restore && sl->what.kind == OP_HEADER) {
        media_header h;
        h.log = st_.log;
        h.stripe = static_cast<uint32_t>(d->index);
        h.stripes = static_cast<uint32_t>(devs_.size());
        h.data_offset = block_;
        h.chunk = transfer_;
        h.image_size = image_.size();
        h.checksum = image_sum_;
        h.database = st_.database;
        memset(sl->buf, 0, sl->what.len);
        media_encode(h, sl->buf);
    }
    sl->busy = true;
    sl->queued = false;
    d->inflight++;
    int rc = vdi_server_device_send_command(d->dev, &sl->cmd);
    if (rc != NOERROR) {
        bool called_back;
        {
            std::lock_guard<std::mutex> lk(d->mu);
            called_back = sl->queued;
        }
        if (!called_back) { /* refused before any callback: nothing will come */
            d->inflight--;
            sl->busy = false;
        }
        if (rc == VD_E_ABORT)
            fail(st_.restore ? 3203 : 3202,
                 verb_noun() + " on \"" + d->name + "\" failed: " + "995(" + win32_text(995) + ")");
        else
            fail(st_.restore ? 3203 : 3202, verb_noun() + " on \"" + d->name +
                                                "\" failed: SendCommand returned " + hex_code(rc) +
                                                " (" + vdi_strerror(rc) + ").");
        stop(STOP_ABORT);
        return false;
    }
    long n = ++sent_, dn = ++d->sent;
    for (const vdi_plan_fault &f : k_.faults)
        if (f.kind == VDI_PLAN_DIE && f.point == VDI_PLAN_AT_COMMAND &&
            count_for(f, d, n, dn) == static_cast<long>(f.after))
            die_with(f.how, ("after sending command " + std::to_string(n)).c_str());
    return true;
}

/* The next completed slot; NULL after timeout_ms without one, or at once when stopped and
 * until_stopped is false (a premature close does not wait for its commands). */
slot *session::wait_done(device *d, bool until_stopped) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(k_.timeout_ms);
    std::unique_lock<std::mutex> lk(d->mu);
    for (;;) {
        if (d->head != d->tail)
            break;
        if (stop_.load() == STOP_CLOSE || (stopped() && !until_stopped))
            return nullptr;
        if (k_.timeout_ms < 0) {
            d->cv.wait(lk);
        } else if (d->cv.wait_until(lk, deadline) == std::cv_status::timeout &&
                   d->head == d->tail) {
            return nullptr;
        }
    }
    slot *sl = d->ring[d->head++ % ring_cap];
    lk.unlock();
    d->inflight--;
    sl->busy = false;
    return sl;
}

void session::progress(uint64_t bytes) {
    std::lock_guard<std::mutex> lk(progress_mu_);
    done_bytes_ += bytes;
    uint64_t size = st_.restore ? master_.image_size : image_.size();
    if (st_.stats <= 0 || size == 0)
        return;
    int pct = static_cast<int>(done_bytes_ * 100 / size);
    while (next_percent_ + st_.stats <= pct) {
        next_percent_ += st_.stats;
        out_->line(std::to_string(next_percent_) + " percent processed.");
    }
}

/* Acts on one completion; false stops the device. */
bool session::handle(device *d, slot *sl) {
    if (stopped())
        return false;
    uint32_t code = sl->cmd.completionCode;
    uint32_t bytes = sl->cmd.bytesTransferred;
    long n = ++completed_, dn = ++d->completed;
    for (const vdi_plan_fault &f : k_.faults) {
        if (f.kind == VDI_PLAN_FAIL && count_for(f, d, n, dn) == static_cast<long>(f.after)) {
            fprintf(stderr, "vdi-sqlcmd: chaos: command %ld taken as failed with code %u\n", n,
                    f.code);
            code = f.code;
            bytes = 0;
        }
    }
    const char *cmd = sl->what.code == VDC_Flush      ? "Flush"
                      : sl->what.code == VDC_Complete ? "Complete"
                                                      : nullptr;
    std::string verb = cmd ? std::string(cmd) : verb_noun();
    if (code != ERROR_SUCCESS) {
        fail(st_.restore ? 3203 : 3202, verb + " on \"" + d->name + "\" failed: " +
                                            std::to_string(code) + "(" + win32_text(code) + ")");
        stop(STOP_ABORT);
        return false;
    }
    if (sl->what.kind != OP_CONTROL && bytes != sl->what.len) {
        fail(st_.restore ? 3203 : 3202, verb + " on \"" + d->name +
                                            "\" failed: " + std::to_string(bytes) + " of " +
                                            std::to_string(sl->what.len) + " bytes transferred.");
        stop(STOP_ABORT);
        return false;
    }
    bool abort_now = false, close_now = false;
    for (const vdi_plan_fault &f : k_.faults) {
        long at = count_for(f, d, n, dn);
        abort_now |= f.kind == VDI_PLAN_ABORT && at == static_cast<long>(f.after);
        close_now |= f.kind == VDI_PLAN_CLOSE && at == static_cast<long>(f.after);
    }
    if (abort_now) {
        fprintf(stderr, "vdi-sqlcmd: chaos: SignalAbort after %ld commands\n", n);
        fail(3271, "A nonrecoverable I/O error occurred on file \"" + d->name +
                       ":\" The virtual device set was aborted (chaos: abort after " +
                       std::to_string(n) + " commands).");
        stop(STOP_ABORT);
        return false;
    }
    if (close_now) {
        fprintf(stderr, "vdi-sqlcmd: chaos: closing the set after %ld commands\n", n);
        fail(3271, "A nonrecoverable I/O error occurred on file \"" + d->name +
                       ":\" The server closed the virtual device set early (chaos: close "
                       "after " +
                       std::to_string(n) + " commands).");
        stop(STOP_CLOSE);
        return false;
    }
    if (st_.restore && sl->what.kind == OP_HEADER)
        d->first.assign(sl->buf, sl->buf + bytes);
    if (st_.restore && sl->what.kind == OP_DATA)
        progress(restore_data(d, static_cast<uint64_t>(sl->what.pos), sl->buf, bytes));
    if (!st_.restore && sl->what.kind == OP_DATA)
        progress(sl->what.img_len);
    return true;
}

/* Sends ops in order with at most `window` in flight; true when all completed. */
bool session::run_ops(device *d, const std::vector<op> &ops, unsigned window) {
    size_t next = 0;
    bool ok = true;
    while (ok && !stopped()) {
        for (auto &sl : d->slots) {
            if (next >= ops.size() || d->inflight >= window || stopped())
                break;
            if (sl.busy)
                continue;
            sl.what = ops[next++];
            if (!send(d, &sl))
                break;
        }
        if (d->inflight == 0)
            break;
        slot *sl = wait_done(d, false);
        if (!sl) {
            if (!stopped()) {
                fail(st_.restore ? 3203 : 3202,
                     verb_noun() + " on \"" + d->name + "\" failed: the client completed " +
                         "nothing within " + std::to_string(k_.timeout_ms) + " ms.");
                stop(STOP_ABORT);
            }
            break;
        }
        ok = handle(d, sl);
    }
    /* After an abort the drain answers every outstanding command at once: wait for them,
     * so that no slot is still in a command when the thread leaves. */
    while (stop_.load() == STOP_ABORT && d->inflight > 0 && wait_done(d, true)) {
    }
    return ok && !stopped() && next == ops.size();
}

/* Checks the stripe's header (in the first block the device read) against the others and
 * plans the rest of its stream: contiguous reads from the end of that first block to the
 * stream's end, whole blocks each. */
bool session::restore_header(device *d, std::vector<op> *ops) {
    media_header &h = d->hdr;
    if (d->first.size() < media_header_size || !media_decode(d->first.data(), &h)) {
        fail(3241, "The media family on device '" + d->name +
                       "' is incorrectly formed. SQL Server cannot process this media family.");
        return false;
    }
    {
        std::lock_guard<std::mutex> lk(hdr_mu_);
        if (!have_master_) {
            if (h.image_size > media_max_image) {
                fail(3241, "The media family on device '" + d->name +
                               "' holds an image too large for vdi-sqlcmd.");
                return false;
            }
            master_ = h;
            have_master_ = true;
            try {
                image_.assign(h.image_size, 0);
            } catch (const std::bad_alloc &) {
                fail(701, "There is insufficient system memory to run this query (an image of " +
                              std::to_string(h.image_size) + " bytes).");
                return false;
            }
            stripe_seen_.assign(h.stripes, false);
        }
        if (h.stripes != devs_.size()) {
            fail(3132, "The media set has " + std::to_string(h.stripes) +
                           " media families but only " + std::to_string(devs_.size()) +
                           " are provided. All members must be provided.");
            return false;
        }
        if (h.stripes != master_.stripes || h.image_size != master_.image_size ||
            h.chunk != master_.chunk || h.checksum != master_.checksum ||
            h.database != master_.database || h.log != master_.log ||
            h.data_offset != master_.data_offset) {
            fail(3231, "The media loaded on \"" + d->name +
                           "\" does not belong to the same media set as the other devices.");
            return false;
        }
        if (stripe_seen_[h.stripe]) {
            fail(3227, "The volume on device \"" + d->name +
                           "\" is a duplicate of stripe set member " +
                           std::to_string(h.stripe + 1) + ".");
            return false;
        }
        stripe_seen_[h.stripe] = true;
    }
    if (h.log != static_cast<uint32_t>(st_.log)) {
        fail(3117, std::string("The backup set on \"") + d->name + "\" holds a " +
                       (h.log ? "log" : "database") + " backup; the statement is " +
                       tsql_verb(st_) + ".");
        return false;
    }
    uint64_t end = media_stream_end(h);
    for (uint64_t pos = d->first.size(); pos < end;) {
        uint64_t len = end - pos < transfer_ ? end - pos : transfer_;
        ops->push_back(
            {OP_DATA, VDC_Read, static_cast<int64_t>(pos), static_cast<uint32_t>(len), 0, 0});
        pos += len;
    }
    progress(restore_data(d, 0, d->first.data(), d->first.size()));
    return true;
}

/* Copies what stream bytes [pos, pos + len) of device d hold of the image into image_;
 * the image bytes copied. On the stream, stripe s's chunks follow the block at
 * data_offset back to back (only the image's last chunk is short), then zeros. */
uint64_t session::restore_data(const device *d, uint64_t pos, const uint8_t *buf, uint64_t len) {
    const media_header &h = d->hdr;
    uint64_t copied = 0;
    uint64_t at = pos < h.data_offset ? h.data_offset : pos;
    while (at < pos + len) {
        uint64_t q = at - h.data_offset;
        uint64_t chunk = q / h.chunk, within = q % h.chunk;
        uint64_t img = (h.stripe + chunk * h.stripes) * h.chunk + within;
        if (img >= h.image_size)
            break; /* the zeros after the stripe's data */
        uint64_t n = h.chunk - within;
        if (n > pos + len - at)
            n = pos + len - at;
        if (n > h.image_size - img)
            n = h.image_size - img;
        memcpy(image_.data() + img, buf + (at - pos), n);
        copied += n;
        at += n;
    }
    return copied;
}

/* A plan's shape for the device's data commands: each cut to its transfer size (whole
 * blocks, the image bytes split with them), last first when the client allows random
 * access, and a VDC_ClearError after the plan's command counts. */
void session::shape_ops(device *d, std::vector<op> *ops) {
    uint32_t t = d->index < VDI_PLAN_MAX_DEVICES ? k_.transfer[d->index] : 0;
    if (t && (t % block_ || t > transfer_)) {
        fprintf(stderr,
                "vdi-sqlcmd: plan: transfer %u on device %zu ignored: not whole blocks of %u "
                "up to MAXTRANSFERSIZE %u\n",
                t, d->index, block_, transfer_);
        t = 0;
    }
    if (t) {
        std::vector<op> cut;
        for (const op &o : *ops) {
            if (o.kind == OP_HEADER || o.kind == OP_CONTROL || o.len <= t) {
                cut.push_back(o);
                continue;
            }
            for (uint32_t a = 0; a < o.len; a += t) {
                op p = o;
                p.pos = o.pos + a;
                p.len = o.len - a < t ? o.len - a : t;
                p.img_off = o.img_off + a;
                p.img_len = o.img_len > a ? (o.img_len - a < p.len ? o.img_len - a : p.len) : 0;
                cut.push_back(p);
            }
        }
        ops->swap(cut);
    }
    if (d->index < VDI_PLAN_MAX_DEVICES && k_.reverse[d->index]) {
        if (client_features_ & VDF_RandomAccess) {
            auto first = ops->begin();
            if (first != ops->end() && first->kind == OP_HEADER)
                ++first;
            std::reverse(first, ops->end());
        } else {
            fprintf(stderr,
                    "vdi-sqlcmd: plan: order %zu reverse ignored: the client did not ask "
                    "for VDF_RandomAccess\n",
                    d->index);
        }
    }
    for (const vdi_plan_fault &f : k_.faults) {
        if (f.kind != VDI_PLAN_CLEARERROR ||
            (f.device >= 0 && static_cast<size_t>(f.device) != d->index))
            continue;
        /* ops of a restore start after the header read: count it */
        size_t at = f.after - (st_.restore ? 1 : 0);
        if (f.after >= 1 && at <= ops->size())
            ops->insert(ops->begin() + static_cast<long>(at),
                        op{OP_CONTROL, VDC_ClearError, 0, 0, 0, 0});
    }
}

void session::device_main(device *d) {
    unsigned window = per_device_;
    if (!st_.restore) {
        /* The stream: the header block, the stripe's chunks back to back (the image's
         * last chunk padded to a whole block), zero blocks to a multiple of
         * media_stream_align: a restore with any block size reads it whole. */
        std::vector<op> ops;
        ops.push_back({OP_HEADER, VDC_Write, 0, block_, 0, 0});
        uint64_t n = devs_.size(), pos = block_;
        for (uint64_t off = d->index * uint64_t{transfer_}; off < image_.size();
             off += n * transfer_) {
            uint64_t len = image_.size() - off < transfer_ ? image_.size() - off : transfer_;
            uint64_t padded = (len + block_ - 1) / block_ * block_;
            ops.push_back({OP_DATA, VDC_Write, static_cast<int64_t>(pos),
                           static_cast<uint32_t>(padded), off, static_cast<uint32_t>(len)});
            pos += padded;
        }
        uint64_t stream_end =
            (pos + media_stream_align - 1) / media_stream_align * media_stream_align;
        while (pos < stream_end) {
            uint64_t len = stream_end - pos < transfer_ ? stream_end - pos : transfer_;
            ops.push_back(
                {OP_PAD, VDC_Write, static_cast<int64_t>(pos), static_cast<uint32_t>(len), 0, 0});
            pos += len;
        }
        shape_ops(d, &ops);
        if (!run_ops(d, ops, window))
            return;
        die_at_point(VDI_PLAN_AT_END, ("after the data on device '" + d->name + "'").c_str());
        std::vector<op> end;
        for (int i = 0; i < k_.flushes; i++)
            end.push_back({OP_CONTROL, VDC_Flush, 0, 0, 0, 0});
        if (send_complete_)
            end.push_back({OP_CONTROL, VDC_Complete, 0, 0, 0, 0});
        if (!run_ops(d, end, 1))
            return;
    } else {
        /* The first read is one whole block, as the backup wrote its header; every read
         * after it continues the stream where the previous one ended (a pipe-like client
         * serves them in order, ignoring the position). */
        std::vector<op> hdr{{OP_HEADER, VDC_Read, 0, block_, 0, 0}};
        if (!run_ops(d, hdr, 1))
            return;
        std::vector<op> ops;
        if (!restore_header(d, &ops)) {
            stop(STOP_ABORT);
            return;
        }
        shape_ops(d, &ops);
        if (!run_ops(d, ops, window))
            return;
        die_at_point(VDI_PLAN_AT_END, ("after the data on device '" + d->name + "'").c_str());
    }
    int rc = vdi_server_device_close(d->dev);
    if (rc != NOERROR && !stopped()) {
        fail_vdi("CloseDevice", rc);
        stop(STOP_ABORT);
    }
}

bool session::finish_restore() {
    uint64_t sum = media_checksum(image_.data(), image_.size());
    std::string restored = media_restored_path(cfg_.data_dir, st_.database, st_.log);
    std::string e = media_write_file(restored, image_, [this] {
        if (k_.die_at == sqlcmd_knobs::DIE_WRITING)
            die(k_, "halfway through writing the restored image");
    });
    if (!e.empty()) {
        fail(3634,
             "The operating system returned an error while writing the restored file: " + e + ".");
        return false;
    }
    if (sum != master_.checksum) {
        fail(3183, "RESTORE detected an error in the data of database '" + st_.database +
                       "' as read from the backup set: checksum mismatch.");
        return false;
    }
    /* The source database's image, when it is here, must come back byte for byte. */
    std::vector<uint8_t> original;
    bool missing = false;
    std::string path = media_image_path(cfg_.data_dir, master_.database, st_.log);
    e = media_read_file(path, &original, &missing);
    if (missing)
        return true;
    if (!e.empty() || original != image_) {
        size_t at = 0;
        while (at < original.size() && at < image_.size() && original[at] == image_[at])
            at++;
        fail(3183, "RESTORE detected an error on page (1:" + std::to_string(at / media_page) +
                       ") in database '" + st_.database + "': the restored data differs from " +
                       path + (e.empty() ? "" : " (" + e + ")") + ".");
        return false;
    }
    return true;
}

bool session::run() {
    double t0 = now_s();
    if (!st_.restore) {
        std::string e;
        try {
            e = media_load_image(media_image_path(cfg_.data_dir, st_.database, st_.log),
                                 st_.database, st_.log, cfg_.db_size, &image_);
        } catch (const std::bad_alloc &) {
            e = "not enough memory for it";
        }
        if (!e.empty()) {
            fail(3201, "Cannot open database '" + st_.database + "' image: " + e + ".");
            return false;
        }
        image_sum_ = media_checksum(image_.data(), image_.size());
    }
    if (!open_set())
        return false;
    die_at_point(VDI_PLAN_AT_OPEN, "after opening the set");
    if (!configure())
        return false;
    die_at_point(VDI_PLAN_AT_CONFIGURED, "after configuring the set");
    if (!start_agent()) {
        (void)vdi_server_set_signal_abort(set_);
        agent_.join();
        return false;
    }
    for (auto &d : devs_) {
        device *dp = d.get();
        dp->thread = std::thread([this, dp] { device_main(dp); });
    }
    for (auto &d : devs_)
        d->thread.join();
    if (stop_.load() == STOP_CLOSE) {
        /* Premature: devices open, commands outstanding; the agent drains them. */
        int rc = vdi_server_set_close(set_);
        fprintf(stderr, "vdi-sqlcmd: chaos: premature Close returned %s\n", vdi_strerror(rc));
        set_closed_ = true;
    }
    agent_.join();
    if (agent_rc_ != NOERROR && !stopped())
        fail_vdi("The completion agent", agent_rc_);
    if (!set_closed_) {
        int rc = vdi_server_set_close(set_);
        if (rc != NOERROR && !stopped())
            fail_vdi("Close", rc);
    }
    if (stopped() || failed_)
        return false;
    if (st_.restore && !st_.replace) {
        bool missing = false;
        std::vector<uint8_t> existing;
        std::string e = media_read_file(media_image_path(cfg_.data_dir, st_.database, st_.log),
                                        &existing, &missing);
        if (!missing && master_.database != st_.database) {
            fail(3154, "The backup set holds a backup of a database other than the existing '" +
                           st_.database + "' database.");
            return false;
        }
    }
    if (st_.restore && !finish_restore())
        return false;
    uint64_t size = st_.restore ? master_.image_size : image_.size();
    uint64_t pages = (size + media_page - 1) / media_page;
    std::string file = st_.log ? st_.database + "_log" : st_.database;
    out_->line("Processed " + std::to_string(pages) + " pages for database '" + st_.database +
               "', file '" + file + "' on file 1.");
    double secs = now_s() - t0;
    if (secs < 0.001)
        secs = 0.001;
    char tail[128];
    snprintf(tail, sizeof tail, " in %.3f seconds (%.3f MB/sec).", secs,
             static_cast<double>(size) / 1048576.0 / secs);
    out_->line(tsql_verb(st_) + " successfully processed " + std::to_string(pages) + " pages" +
               tail);
    return true;
}

} // namespace

void sqlcmd_knobs_to_faults(sqlcmd_knobs *k) {
    auto add = [k](uint8_t kind, long after) {
        vdi_plan_fault f;
        memset(&f, 0, sizeof f);
        f.kind = kind;
        f.device = -1;
        f.after = static_cast<uint32_t>(after);
        f.how = plan_how(k->die_how);
        k->faults.push_back(f);
        return &k->faults.back();
    };
    if (k->abort_after > 0)
        add(VDI_PLAN_ABORT, k->abort_after);
    if (k->close_after > 0)
        add(VDI_PLAN_CLOSE, k->close_after);
    if (k->fail_at > 0)
        add(VDI_PLAN_FAIL, k->fail_at)->code = k->fail_code;
    switch (k->die_at) {
    case sqlcmd_knobs::DIE_OPEN:
        add(VDI_PLAN_DIE, 0)->point = VDI_PLAN_AT_OPEN;
        break;
    case sqlcmd_knobs::DIE_CONFIGURED:
        add(VDI_PLAN_DIE, 0)->point = VDI_PLAN_AT_CONFIGURED;
        break;
    case sqlcmd_knobs::DIE_END:
        add(VDI_PLAN_DIE, 0)->point = VDI_PLAN_AT_END;
        break;
    case sqlcmd_knobs::DIE_COMMAND:
        add(VDI_PLAN_DIE, k->die_command);
        break;
    default:
        break;
    }
}

bool sqlcmd_run(const tsql_statement &st, const sqlcmd_config &cfg, sqlcmd_output *out,
                sqlcmd_result *result) {
    session s(st, cfg, out);
    bool ok = s.run();
    if (result) {
        result->sent = s.sent();
        result->completed = s.completed();
    }
    return ok;
}
