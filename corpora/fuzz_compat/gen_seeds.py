#!/usr/bin/env python3
"""gen_seeds.py: writes the readable seed inputs of fuzz_compat into seed/ next to this
script, one file per documented call sequence, and seed/README.md saying what each does. The
encoder mirrors the decoder in fuzz/fuzz_compat.cpp byte for byte."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from seedlib import Seeds, here_seed_dir  # noqa: E402

# ---- fuzz_compat: op numbers and argument order of fuzz/fuzz_compat.cpp ----------------------
(C_CREATE, C_GET_CONFIG, C_OPEN_DEVICE, C_CLOSE, C_ABORT, C_SECONDARY, C_GET_HANDLE,
 C_MAP_HANDLE, C_GET_COMMAND, C_COMPLETE, C_DELETE_DEVICE, C_RENEW_SET, S_OPEN, S_GET_CONFIG,
 S_BEGIN, S_REQUEST, S_QUERY, S_END, S_AGENT, S_OPEN_DEVICE, S_ALLOCATE, S_FREE, S_IS_SHARED,
 S_ABORT, S_CLOSE, S_SEND, S_CLOSE_DEVICE, S_FLOOD) = range(28)
NULL_HANDLE, NULL_OUT = 0x0F, 0xF0

# pick_timeout's table: the index of each time_t class
T = {0: 0, 1: 2, 2: 3, 499: 4, 500: 5, 501: 6, 1000: 7, 1501: 8, "inf": 9, -2: 11,
     5001: 12, 60000: 13, "2^32+1": 14, "LONG_MAX": 15, "LONG_MIN": 16, 120001: 17,
     3600000: 18}
# who ends a wait the model says outlasts RESCUE_MS (120 s): an abort from inside the wait by
# the client or the attached server, or the set's Close or delete on another thread
BY_CLIENT, BY_SERVER, BY_CLOSE, BY_DELETE = 0, 1, 2, 3


class Compat:
    """Builds one fuzz_compat input; tracks what the decoder's choices depend on."""

    def __init__(self):
        self.b = bytearray()
        self.nbufs = 0      # buffers allocated so far (pointer choices)
        self.nhandles = 0   # buffer handles recorded

    def op(self, code, flags=0, *args):
        self.b += bytes([code, flags]) + bytes(args)
        return self

    # the set objects: ci is 0 or 1
    def create(self, ci=0, name=0, ndev=0, feat=0, align=0, prefix=0, flags=0):
        return self.op(C_CREATE, flags, ci, name, ndev, feat, align, prefix, 0)

    def get_config(self, ci=0, timeout=0, rescuer=BY_CLIENT, flags=0):
        return self.op(C_GET_CONFIG, flags, ci, T[timeout], rescuer)

    def open_device(self, ci=0, name=0, flags=0):
        return self.op(C_OPEN_DEVICE, flags, ci, name)

    def c_close(self, ci=0):
        return self.op(C_CLOSE, 0, ci)

    def c_abort(self, ci=0):
        return self.op(C_ABORT, 0, ci)

    def secondary(self, ci=1, name=0):
        return self.op(C_SECONDARY, 0, ci, name)

    def renew(self, ci=0, broken=False):
        return self.op(C_RENEW_SET, NULL_HANDLE if broken else 0, ci)

    def ptr(self, how=0, buf=0):
        """pick_server_ptr: how 0 start, 1 +1, 2 last byte, 3 end, 4 -1, 5 -prefix,
        6 NULL, 7 junk."""
        if self.nbufs <= 1 or how >= 6:
            return bytes([how])
        return bytes([how, buf])

    def get_handle(self, ci=0, how=0, buf=0, ok=True):
        self.b += bytes([C_GET_HANDLE, 0, ci]) + self.ptr(how, buf)
        self.nhandles += 1 if ok else 0
        return self

    def map_handle(self, ci=0, which=0, junk=0xFFFFFFFF):
        self.b += bytes([C_MAP_HANDLE, 0, ci])
        if self.nhandles:
            self.b.append(which)
        if which >= self.nhandles:
            self.b += junk.to_bytes(4, "little")
        return self

    # the device objects: dev is an index into those held (one byte whenever one is held)
    def get_command(self, dev=0, timeout=0, rescuer=BY_CLIENT, flags=0):
        return self.op(C_GET_COMMAND, flags, dev, T[timeout], rescuer)

    def orphan_get_command(self, dev=0, timeout=0, flags=0):
        """GetCommand on a device object whose set closed: no model step, no rescuer byte."""
        return self.op(C_GET_COMMAND, flags, dev, T[timeout])

    def complete(self, dev=0, which=0, code=0, bsel=0, pos=0, flags=0):
        """bsel 0 the size, 1 zero, 2 size + 1, 3 half, 4 above 32 bits; pos 0xFFFF is -1."""
        return self.op(C_COMPLETE, flags, dev, which, code, bsel, pos & 255, pos >> 8)

    def delete_device(self, dev=0):
        return self.op(C_DELETE_DEVICE, 0, dev)

    # the server (the C API): si_byte >= 240 selects the second server object
    def s_open(self, name=0, si=0, inst=0):
        return self.op(S_OPEN, 0, si, inst, name)

    def begin(self, feat=0, bs=0, asel=0, mts=0, timeout=1, si=0):
        return self.op(S_BEGIN, 0, si, feat, bs, asel, mts, timeout)

    def request(self, size=1, align=0, count=2, si=0):
        return self.op(S_REQUEST, 0, si, size, align, count)

    def end(self, si=0):
        return self.op(S_END, 0, si)

    def agent(self, si=0):
        return self.op(S_AGENT, 0, si)

    def s_open_device(self, name=0, si=0):
        return self.op(S_OPEN_DEVICE, 0, si, name)

    def allocate(self, size=1, align=0, si=0):
        self.nbufs += 1
        return self.op(S_ALLOCATE, 0, si, size, align)

    def free(self, how=0, buf=0, ssel=0, si=0):
        self.b += bytes([S_FREE, 0, si]) + self.ptr(how, buf) + bytes([ssel])
        return self

    def s_abort(self, si=0):
        return self.op(S_ABORT, 0, si)

    def s_close(self, si=0):
        return self.op(S_CLOSE, 0, si)

    def send(self, slot=0, cmd=0, code=0, zsel=0, how=0, buf=0, pos=0, si=0):
        self.b += bytes([S_SEND, 0, si, slot, cmd, code, zsel])
        self.b += self.ptr(how, buf) + bytes([pos & 255, pos >> 8])
        return self

    def close_device(self, slot=0, si=0):
        return self.op(S_CLOSE_DEVICE, 0, si, slot)

    def configured(self, ndev=0):
        """Create (1 device), server open, configure 2 x 64 KiB, GetConfiguration."""
        self.create(ndev=ndev).s_open().begin().request(size=1, count=2).end()
        return self.get_config()

    def to_active(self, ndev=0):
        """configured, then both open the set's device (device object 0) and the agent runs."""
        return self.configured(ndev).s_open_device().open_device().agent()


seeds = Seeds()


@seeds("backup-one-device", "the thin path through the layer: one Write, completed, normal end")
def _(a):
    a.to_active().allocate(size=1).send(cmd=0, pos=7).get_command()
    a.complete(which=0, pos=4096).close_device().get_command().s_close().c_close()


@seeds("config-timeouts", "GetConfiguration with every finite timeout class, before and after "
       "the server opens, then INFINITE once configured (no wait)")
def _(a):
    a.create()
    for t in (0, 1, 2, 499, 500, 501, 1000, 1501):
        a.get_config(timeout=t)
    a.s_open()
    for t in (0, 1, 501, 1501):
        a.get_config(timeout=t)
    a.begin().request().end().get_config(timeout="inf").get_config(timeout="LONG_MIN")
    a.s_close().c_close()


@seeds("config-infinite-client-abort", "GetConfiguration(INFINITE) before any server: still "
       "waiting at 120 s, ended by the client's own SignalAbort: VD_E_ABORT")
def _(a):
    a.create().get_config(timeout="inf").get_config().c_close()


@seeds("config-infinite-server-abort", "GetConfiguration(-2) with the server attached: ended "
       "by the server's signal_abort")
def _(a):
    a.create().s_open().get_config(timeout=-2, rescuer=BY_SERVER).s_close().c_close()


@seeds("config-huge-timeouts", "timeouts beyond 32 bits and LONG_MAX still wait (not wrapped)")
def _(a):
    a.create().get_config(timeout="2^32+1").renew().create().get_config(timeout="LONG_MAX")
    a.renew().create().s_open().get_config(timeout=60000).get_config(timeout=120001)
    a.renew().create().s_open().get_config(timeout=3600000, rescuer=BY_SERVER)


@seeds("command-timeouts", "GetCommand with every finite timeout class, INFINITE with a "
       "command queued, then INFINITE ended by the server's abort (the agent drains)")
def _(a):
    a.to_active()
    for t in (0, 1, 2, 499, 500, 501, 1000, 1501, 5001, 60000):
        a.get_command(timeout=t)
    a.allocate().send(cmd=0).send(cmd=1).get_command(timeout="inf").complete(which=0)
    a.get_command(timeout="LONG_MIN").get_command(timeout="inf", rescuer=BY_SERVER)
    a.s_close().c_close()


@seeds("close-under-get-command", "GetCommand(INFINITE) ended by the set's Close on another "
       "thread: Close waits for it to leave (VD_E_OPEN, the device unfinished), it answers "
       "VD_E_ABORT; then the same for GetConfiguration of a new set")
def _(a):
    a.to_active().get_command(timeout="inf", rescuer=BY_CLOSE).orphan_get_command().s_close()
    a.create(ci=1).get_config(ci=1, timeout="inf", rescuer=BY_CLOSE).get_config(ci=1)


@seeds("delete-under-get-configuration", "the set object deleted on another thread while its "
       "GetConfiguration(INFINITE) and later its GetCommand wait: the delete waits for the call")
def _(a):
    a.create().get_config(timeout="inf", rescuer=BY_DELETE).to_active()
    a.get_command(timeout="LONG_MIN", rescuer=BY_DELETE).orphan_get_command().s_close()


@seeds("command-huge-timeout", "GetCommand(2^32 + 1): the timeout is not cut to 32 bits")
def _(a):
    a.to_active().get_command(timeout="2^32+1").s_close().c_close()


@seeds("device-after-close", "a device object after its set's Close: GetCommand and "
       "CompleteCommand answer VD_E_PROTOCOL; then deleted; the set made again")
def _(a):
    a.to_active().allocate().send(cmd=0).get_command().complete(which=0).close_device()
    a.get_command().c_close().orphan_get_command().complete(which=0)
    a.orphan_get_command(timeout="inf").delete_device().s_close()
    a.to_active().get_command().s_close().c_close()


@seeds("orphan-after-reopen", "a device object kept across Close, Create and OpenDevice of the "
       "same device: the old object answers VD_E_PROTOCOL, the new one gets the command")
def _(a):
    a.to_active().c_close().s_close().to_active().allocate().send(cmd=0)
    a.orphan_get_command(dev=0).complete(dev=0, which=0).get_command(dev=1)
    a.orphan_get_command(dev=0).complete(dev=1, which=0).close_device().get_command(dev=1)
    a.s_close().c_close().orphan_get_command(dev=1)


@seeds("device-object-outlives-set", "the set object deleted (its destructor closes, devices "
       "still open: the server sees the abort); the device objects answer VD_E_PROTOCOL")
def _(a):
    a.to_active(ndev=2).s_open_device(name=3).open_device(name=3).allocate().send(cmd=0)
    a.get_command().renew().orphan_get_command(dev=1).complete(dev=0).s_close()
    a.orphan_get_command(dev=0)


@seeds("device-deleted-before-close", "a device object deleted while its set lives: the C "
       "device stays open, so Close answers VD_E_OPEN and aborts the server")
def _(a):
    a.to_active().delete_device().allocate().send(cmd=0).c_close().send(cmd=1).s_close()


@seeds("broken-set-object", "a ClientVirtualDeviceSet whose constructor could not allocate: "
       "every method VD_E_MEMORY; a new object works")
def _(a):
    a.renew(broken=True).create().get_config().open_device().open_device(flags=NULL_OUT)
    a.secondary(ci=0).get_handle().map_handle().c_abort().c_close().renew()
    a.to_active().s_close().c_close()


@seeds("closed-set-calls", "every method on a set after its Close (and before any Create): "
       "VD_E_PROTOCOL; NULL out-parameters VD_E_INVALID")
def _(a):
    a.get_config().open_device().c_close().c_abort().get_handle().map_handle()
    a.configured().s_close().c_close().get_config(timeout="inf").open_device().c_close()
    a.c_abort().open_device(flags=NULL_OUT).get_config(flags=NULL_OUT).create(flags=NULL_OUT)
    a.create(name=10).create(name=6).create(name=7).create(name=9).create(ndev=6)


@seeds("buffer-handles", "GetBufferHandle / MapBufferHandle at the client's addresses")
def _(a):
    a.to_active().allocate().allocate().send(cmd=0, buf=1).get_command()
    a.get_handle(how=0, buf=1).get_handle(how=1, buf=1, ok=False).map_handle(which=0)
    a.map_handle(which=1).free(buf=1).map_handle(which=0).close_device()
    a.complete(which=0).get_command().s_close().c_close()


@seeds("map-handle-after-free", "MapBufferHandle of a handle whose buffer was freed and whose "
       "slot a new buffer took: the value names the new buffer (the target once expected "
       "VD_E_INVALID)")
def _(a):
    a.to_active().allocate().send(cmd=0).get_command().get_handle(how=0, buf=0)
    a.complete(which=0).free(how=0, buf=0).allocate().map_handle(which=0)
    a.close_device().get_command().s_close().c_close()


@seeds("complete-codes", "CompleteCommand: error codes as int, -1 position, byte counts "
       "(above the size, above 32 bits), twice, NULL")
def _(a):
    a.to_active().allocate().send(cmd=0).send(cmd=1).get_command().get_command()
    a.complete(which=0, bsel=4).complete(which=0, bsel=2).complete(which=0, code=8, pos=0xFFFF)
    a.complete(which=0).complete(which=1, flags=NULL_OUT).complete(which=1, code=4, bsel=3)
    a.send(cmd=2).s_close().c_close()


@seeds("secondary", "OpenInSecondary before and after the primary's GetConfiguration")
def _(a):
    a.create().secondary().s_open().begin().request().end().secondary(ci=1)
    a.get_config().secondary(ci=1).get_config(ci=1).get_config(ci=1, timeout="inf")
    a.c_close(ci=1).c_close().s_close()


def make(fn):
    a = Compat()
    fn(a)
    return bytes(a.b)


def main():
    seeds.write(here_seed_dir(__file__),
                ["# fuzz_compat seeds (written by ../gen_seeds.py; do not edit by hand)", ""],
                make)


if __name__ == "__main__":
    main()
