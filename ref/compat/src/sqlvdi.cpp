/* sqlvdi.cpp: libsqlvdi.so, the SDK's two client classes as a thin layer over the
 * reference C API. The layer adds no protocol of its own; what it owns is lifetime: a
 * device object may outlive its set (deleted after Close, or never), so every device
 * object sits on exactly one list, its set's or the orphans', under one library lock,
 * and a set's C object is freed only once no call of this layer is still inside it. */
#include "vdi/vdi.h" /* the reference C API: first, so that the SDK header reuses its types */
#include "vdi.h"     /* the SDK surface (ref/compat/include) */

#include "sqlvdi_audit.h"

#include <climits>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <new>

namespace {

struct compat_set;

/* What a ClientVirtualDevice points to. owner and dev are NULL once the set closed. */
struct compat_device {
    compat_set *owner;
    vdi_client_device *dev;
    ClientVirtualDevice *self;
    compat_device *prev, *next; /* on the owner's list, or on the orphans' */
    bool dead;                  /* audit mode: its object was deleted (kept to say so) */
    sqlvdi_audit::device_state audit;
};

/* What a ClientVirtualDeviceSet points to. */
struct compat_set {
    vdi_client_set *set;
    unsigned calls;  /* calls of this layer inside set, under lib_mutex() */
    unsigned closes; /* Closes that closed the C set, under lib_mutex() */
    std::condition_variable idle;
    compat_device *devices; /* devices opened since the last Close */
    bool dead;              /* audit mode: its object was deleted (kept to say so) */
    compat_set *grave_next; /* audit mode: on the graveyard once dead */
    sqlvdi_audit::set_state audit;
};

/* Audit mode: the objects of deleted sets and devices, kept (and reachable, so that a
 * leak checker does not take them for leaks) to tell a call through a dangling pointer. */
compat_set *dead_sets;
compat_device *dead_devices;

/* Allocated once and never freed, so that a device deleted from a static destructor
 * after this library's own statics are gone still finds them. */
std::mutex &lib_mutex() {
    static std::mutex *m = new std::mutex;
    return *m;
}

/* Devices whose set closed while the caller still held them. Kept on a list so that a
 * client that never deletes them is not reported as leaking, and unlinked when it does. */
compat_device *orphans;

void push(compat_device **head, compat_device *d) {
    d->prev = nullptr;
    d->next = *head;
    if (*head)
        (*head)->prev = d;
    *head = d;
}

void unlink(compat_device **head, compat_device *d) {
    if (d->prev)
        d->prev->next = d->next;
    else
        *head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = nullptr;
}

/* Counts a call into s; the C object stays allocated until the count drops to zero. */
int enter_set(void *impl, compat_set **out) {
    auto *s = static_cast<compat_set *>(impl);
    if (!s)
        return VD_E_MEMORY; /* the constructor could not allocate */
    if (s->dead) {          /* audit mode only: otherwise the object's memory is gone */
        sqlvdi_audit::report("deleted-object", "a call on a deleted ClientVirtualDeviceSet");
        return VD_E_PROTOCOL;
    }
    std::lock_guard<std::mutex> lk(lib_mutex());
    s->calls++;
    *out = s;
    return NOERROR;
}

void leave_set(compat_set *s) {
    std::lock_guard<std::mutex> lk(lib_mutex());
    if (--s->calls == 0)
        s->idle.notify_all();
}

/* A device call: its C handle, and its set counted as in use; VD_E_PROTOCOL once the set
 * closed (the C handle belongs to the set and died with its Close). */
int enter_device(void *impl, compat_set **s, vdi_client_device **dev, const char *call) {
    auto *d = static_cast<compat_device *>(impl);
    if (!d)
        return VD_E_PROTOCOL;
    if (d->dead) {
        sqlvdi_audit::report("deleted-object", "%s on a deleted ClientVirtualDevice", call);
        return VD_E_PROTOCOL;
    }
    std::unique_lock<std::mutex> lk(lib_mutex());
    if (!d->owner) {
        lk.unlock();
        if (sqlvdi_audit::on)
            sqlvdi_audit::report(strcmp(call, "CompleteCommand") == 0 ? "complete-after-close"
                                                                      : "call-after-close",
                                 "%s on a device of a set that was closed", call);
        return VD_E_PROTOCOL;
    }
    *s = d->owner;
    *dev = d->dev;
    d->owner->calls++;
    return NOERROR;
}

/* After a Close that closed the C set: its device handles are dead; the objects the
 * caller holds become orphans. */
void orphan_devices(compat_set *s) {
    std::lock_guard<std::mutex> lk(lib_mutex());
    s->closes++;
    while (compat_device *d = s->devices) {
        unlink(&s->devices, d);
        d->owner = nullptr;
        d->dev = nullptr;
        push(&orphans, d);
    }
}

long timeout_of(time_t t) {
    return t < 0 ? VDI_INFINITE : static_cast<long>(t);
}

/* Audit mode: why the reference refused a completion (VD_E_INVALID). */
void judge_refused_completion(compat_set *s, compat_device *d, VDC_Command *cmd,
                              unsigned long bytes) {
    if (sqlvdi_audit::take(&d->audit, cmd)) {
        bool data = cmd->commandCode == VDC_Read || cmd->commandCode == VDC_Write;
        if (data && bytes > static_cast<unsigned long>(cmd->size))
            sqlvdi_audit::report(
                "complete-too-many", "set '%s': a %s of %d bytes completed with %lu bytes",
                s->audit.name, cmd->commandCode == VDC_Read ? "read" : "write", cmd->size, bytes);
        else
            sqlvdi_audit::report("complete-unknown", "set '%s': CompleteCommand refused",
                                 s->audit.name);
        sqlvdi_audit::delivered(&d->audit, cmd); /* still held: it was not completed */
        return;
    }
    bool other = false;
    {
        std::lock_guard<std::mutex> lk(lib_mutex());
        for (compat_device *o = s->devices; o && !other; o = o->next)
            for (unsigned i = 0; o != d && i < o->audit.nheld; i++)
                other |= o->audit.held[i] == cmd;
    }
    sqlvdi_audit::report("complete-unknown",
                         other ? "set '%s': a command completed on another device than its own"
                               : "set '%s': a command completed twice, or never delivered",
                         s->audit.name);
}

} // namespace

/* ---- ClientVirtualDevice ---- */

ClientVirtualDevice::ClientVirtualDevice() : m_impl(nullptr) {}

ClientVirtualDevice::~ClientVirtualDevice() {
    auto *d = static_cast<compat_device *>(m_impl);
    if (!d)
        return;
    {
        std::lock_guard<std::mutex> lk(lib_mutex());
        unlink(d->owner ? &d->owner->devices : &orphans, d);
    }
    if (sqlvdi_audit::on) { /* kept, so that a call through a dangling pointer is told */
        std::lock_guard<std::mutex> lk(lib_mutex());
        d->dead = true;
        push(&dead_devices, d);
        return;
    }
    delete d;
}

int ClientVirtualDevice::GetCommand(time_t timeOut, VDC_Command **ppCmd) {
    if (ppCmd)
        *ppCmd = nullptr;
    compat_set *s;
    vdi_client_device *dev;
    int rc = enter_device(m_impl, &s, &dev, "GetCommand");
    if (rc != NOERROR)
        return rc;
    auto *d = static_cast<compat_device *>(m_impl);
    unsigned others = sqlvdi_audit::on ? sqlvdi_audit::get_begin(&d->audit) : 0;
    rc = vdi_client_device_get_command(dev, timeout_of(timeOut), ppCmd);
    if (sqlvdi_audit::on) {
        sqlvdi_audit::get_end(&d->audit);
        /* VD_E_PROTOCOL: another GetCommand runs on the device, or the set is no longer
         * active: its Close, on another thread, finished first */
        if (rc == NOERROR && ppCmd && *ppCmd)
            sqlvdi_audit::delivered(&d->audit, *ppCmd);
        else if (rc == VD_E_PROTOCOL && others)
            sqlvdi_audit::report("concurrent-get",
                                 "set '%s': a second GetCommand on a device while one runs",
                                 s->audit.name);
        else if (rc == VD_E_PROTOCOL)
            sqlvdi_audit::report("call-after-close",
                                 "set '%s': GetCommand overtaken by the set's Close on another "
                                 "thread",
                                 s->audit.name);
        sqlvdi_audit::answered(&s->audit, rc, timeOut == 0);
    }
    leave_set(s);
    return rc;
}

int ClientVirtualDevice::CompleteCommand(VDC_Command *pCmd, int completionCode,
                                         unsigned long bytesTransferred, int64_t position) {
    if (bytesTransferred > UINT32_MAX)
        return VD_E_INVALID;
    compat_set *s;
    vdi_client_device *dev;
    int rc = enter_device(m_impl, &s, &dev, "CompleteCommand");
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_device_complete_command(dev, pCmd, static_cast<uint32_t>(completionCode),
                                            static_cast<uint32_t>(bytesTransferred),
                                            static_cast<uint64_t>(position));
    if (sqlvdi_audit::on) {
        auto *d = static_cast<compat_device *>(m_impl);
        if (rc == VD_E_INVALID && pCmd)
            judge_refused_completion(s, d, pCmd, bytesTransferred);
        else if (pCmd)
            (void)sqlvdi_audit::take(&d->audit, pCmd); /* recorded, or dropped by an abort */
        sqlvdi_audit::answered(&s->audit, rc, false);
    }
    leave_set(s);
    return rc;
}

/* ---- ClientVirtualDeviceSet ---- */

ClientVirtualDeviceSet::ClientVirtualDeviceSet() : m_impl(nullptr) {
    sqlvdi_audit::init();
    auto *s = new (std::nothrow) compat_set{};
    if (!s)
        return;
    s->set = vdi_client_set_new();
    if (!s->set) {
        delete s;
        return;
    }
    m_impl = s;
}

ClientVirtualDeviceSet::~ClientVirtualDeviceSet() {
    auto *s = static_cast<compat_set *>(m_impl);
    if (!s)
        return;
    (void)Close(); /* VD_E_PROTOCOL when it was not open: nothing happens */
    {
        /* Threads woken by Close may still be on their way out of this layer. */
        std::unique_lock<std::mutex> lk(lib_mutex());
        s->idle.wait(lk, [s] { return s->calls == 0; });
    }
    vdi_client_set_free(s->set);
    if (sqlvdi_audit::on) { /* kept, so that a call through a dangling pointer is told */
        sqlvdi_audit::set_deleted(&s->audit);
        std::lock_guard<std::mutex> lk(lib_mutex());
        s->set = nullptr;
        s->dead = true;
        s->grave_next = dead_sets;
        dead_sets = s;
        return;
    }
    delete s;
}

int ClientVirtualDeviceSet::Create(char *name, VDConfig *cfg) {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_create(s->set, name, cfg);
    if (sqlvdi_audit::on && rc == NOERROR)
        sqlvdi_audit::set_created(&s->audit, name);
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::GetConfiguration(time_t timeout, VDConfig *cfg) {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_get_configuration(s->set, timeout_of(timeout), cfg);
    if (sqlvdi_audit::on) {
        if (rc == VD_E_PROTOCOL && s->audit.closed)
            sqlvdi_audit::report("call-after-close", "GetConfiguration on set '%s' after its Close",
                                 s->audit.name);
        sqlvdi_audit::answered(&s->audit, rc, timeout == 0);
    }
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::OpenDevice(char *name, ClientVirtualDevice **ppVirtualDevice) {
    if (ppVirtualDevice)
        *ppVirtualDevice = nullptr;
    if (!ppVirtualDevice)
        return VD_E_INVALID;
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    /* Allocated before the C call, so that a device the C set opened always gets its
     * object: a device cannot be closed again by the client. */
    auto *obj = new (std::nothrow) ClientVirtualDevice();
    auto *d = new (std::nothrow) compat_device{};
    unsigned closes;
    {
        std::lock_guard<std::mutex> lk(lib_mutex());
        closes = s->closes;
    }
    vdi_client_device *dev = nullptr;
    rc = (obj && d) ? vdi_client_set_open_device(s->set, name, &dev) : VD_E_MEMORY;
    if (rc == NOERROR) {
        d->self = obj;
        obj->m_impl = d;
        std::lock_guard<std::mutex> lk(lib_mutex());
        if (s->closes == closes) {
            d->owner = s;
            d->dev = dev;
            push(&s->devices, d);
        } else { /* a concurrent Close ended the set (and this handle) meanwhile */
            push(&orphans, d);
        }
        *ppVirtualDevice = obj;
    } else {
        delete obj;
        delete d;
    }
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::Close() {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_close(s->set);
    if (rc != VD_E_PROTOCOL) /* it closed: NOERROR or VD_E_OPEN */
        orphan_devices(s);
    if (sqlvdi_audit::on && rc != VD_E_PROTOCOL) {
        if (rc == VD_E_OPEN && !s->audit.aborted)
            sqlvdi_audit::report("close-holding",
                                 "set '%s': Close with devices not at their end (VD_E_OPEN), "
                                 "no abort seen",
                                 s->audit.name);
        sqlvdi_audit::set_closed(&s->audit);
    }
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::SignalAbort() {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_signal_abort(s->set);
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::OpenInSecondary(char *setName) {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_open_in_secondary(s->set, setName);
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::GetBufferHandle(uint8_t *pBuffer, unsigned int *pBufferHandle) {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_get_buffer_handle(s->set, pBuffer, pBufferHandle);
    leave_set(s);
    return rc;
}

int ClientVirtualDeviceSet::MapBufferHandle(int dwBuffer, uint8_t **ppBuffer) {
    compat_set *s;
    int rc = enter_set(m_impl, &s);
    if (rc != NOERROR)
        return rc;
    rc = vdi_client_set_map_buffer_handle(s->set, static_cast<uint32_t>(dwBuffer), ppBuffer);
    leave_set(s);
    return rc;
}

/* The SDK lets a client say that it is done with a device. The reference tracks each
 * device's end itself (VD_E_CLOSE, completed commands), so there is nothing to record. */
void ClientVirtualDeviceSet::RegisterDeviceClosed() {}
