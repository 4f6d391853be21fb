#!/usr/bin/env python3
"""gen_seeds.py: writes the readable seed inputs of fuzz_api into seed/ next to this script,
one file per documented call sequence, and seed/README.md saying what each does. The
encoder mirrors the decoder in fuzz/fuzz_api.c byte for byte."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from seedlib import Seeds, here_seed_dir  # noqa: E402

# ---- fuzz_api: op numbers and argument order of fuzz/fuzz_api.c ----------------------------
(C_CREATE, C_GET_CONFIG, C_OPEN_DEVICE, C_CLOSE, C_ABORT, C_SECONDARY, C_GET_HANDLE,
 C_MAP_HANDLE, C_GET_COMMAND, C_COMPLETE, S_OPEN, S_GET_CONFIG, S_BEGIN, S_REQUEST, S_QUERY,
 S_END, S_AGENT, S_OPEN_DEVICE, S_ALLOCATE, S_FREE, S_IS_SHARED, S_ABORT, S_CLOSE, S_SEND,
 S_CLOSE_DEVICE, S_FLOOD) = range(26)
NULL_HANDLE, NULL_OUT = 0x0F, 0xF0


class Api:
    """Builds one fuzz_api input; tracks what the decoder's choices depend on."""

    def __init__(self):
        self.b = bytearray()
        self.nbufs = 0      # buffers allocated so far (pointer choices)
        self.nhandles = 0   # buffer handles recorded
        self.cdev = set()   # (client, slot) with a handle
        self.sdev = set()   # (server, slot)

    def op(self, code, flags=0, *args):
        self.b += bytes([code, flags]) + bytes(args)
        return self

    # client ops: ci is the client object (0 or 1)
    def create(self, ci=0, inst=0, name=0, ndev=0, feat=0, align=0, prefix=0, flags=0):
        return self.op(C_CREATE, flags, ci, inst, name, ndev, feat, align, prefix, 0)

    def get_config(self, ci=0, timeout=0, flags=0):
        return self.op(C_GET_CONFIG, flags, ci, timeout)

    def c_open_device(self, ci=0, name=0, slot=0, flags=0):
        self.cdev.add((ci, slot))
        return self.op(C_OPEN_DEVICE, flags, ci, name)

    def c_close(self, ci=0):
        return self.op(C_CLOSE, 0, ci)

    def c_abort(self, ci=0):
        return self.op(C_ABORT, 0, ci)

    def secondary(self, ci=1, inst=0, name=0):
        return self.op(C_SECONDARY, 0, ci, inst, name)

    def ptr(self, how=0, buf=0):
        """pick_server_ptr: how 0 start, 1 +1, 2 last byte, 3 end, 4 -1, 5 -prefix,
        6 NULL, 7 junk."""
        if self.nbufs <= 1 or how >= 6:  # a choice among one or none takes no byte
            return bytes([how])
        return bytes([how, buf])

    def get_handle(self, ci=0, how=0, buf=0, ok=True):
        self.b += bytes([C_GET_HANDLE, 0, ci]) + self.ptr(how, buf)
        self.nhandles += 1 if ok else 0
        return self

    def map_handle(self, ci=0, which=0, junk=0xFFFFFFFF):
        """which < handles recorded: that handle; else a junk value."""
        self.b += bytes([C_MAP_HANDLE, 0, ci])
        if self.nhandles:
            self.b.append(which)
        if which >= self.nhandles:
            self.b += junk.to_bytes(4, "little")
        return self

    def get_command(self, ci=0, slot=0, timeout=0):
        return self.op(C_GET_COMMAND, 0, ci, slot, timeout)

    def complete(self, ci=0, slot=0, which=0, code=0, bsel=0, pos=0):
        return self.op(C_COMPLETE, 0, ci, slot, which, code, bsel, pos & 255, pos >> 8)

    # server ops: si_byte >= 240 selects the second server object
    def s_open(self, inst=0, name=0, si=0, flags=0):
        return self.op(S_OPEN, flags, si, inst, name)

    def s_get_config(self, si=0):
        return self.op(S_GET_CONFIG, 0, si)

    def begin(self, feat=0, bs=0, asel=0, mts=0, timeout=1, si=0):
        return self.op(S_BEGIN, 0, si, feat, bs, asel, mts, timeout)

    def request(self, size=1, align=0, count=2, huge=0, si=0):
        return self.op(S_REQUEST, 0, si, size, align, count, huge)

    def query(self, size=1, align=0, si=0):
        return self.op(S_QUERY, 0, si, size, align)

    def end(self, si=0):
        return self.op(S_END, 0, si)

    def agent(self, si=0):
        return self.op(S_AGENT, 0, si)

    def s_open_device(self, name=0, si=0):
        return self.op(S_OPEN_DEVICE, 0, si, name)

    def allocate(self, size=1, align=0, si=0, huge=0):
        self.nbufs += 1
        return self.op(S_ALLOCATE, 0, si, size, align, huge)

    def free(self, how=0, buf=0, ssel=0, si=0):
        self.b += bytes([S_FREE, 0, si]) + self.ptr(how, buf) + bytes([ssel])
        return self

    def is_shared(self, how=0, buf=0, si=0):
        self.b += bytes([S_IS_SHARED, 0, si]) + self.ptr(how, buf)
        return self

    def s_abort(self, si=0):
        return self.op(S_ABORT, 0, si)

    def s_close(self, si=0):
        return self.op(S_CLOSE, 0, si)

    def send(self, slot=0, cmd=0, code=0, zsel=0, how=0, buf=0, pos=0, si=0, flood=False):
        """code: 0-2 Write, 3 Read, 4 ClearError, 5 WriteMark, 6 Flush, 7 code 0, 8 code 20,
        9 code 999, 10 GetPosition; zsel 0 the rest of the buffer, 1 one byte, 2 zero,
        3 one past the zone, 4 above maxTransferSize, 5 512."""
        self.b += bytes([S_FLOOD if flood else S_SEND, 0, si, slot, cmd, code, zsel])
        self.b += self.ptr(how, buf) + bytes([pos & 255, pos >> 8])
        return self

    def close_device(self, slot=0, si=0):
        return self.op(S_CLOSE_DEVICE, 0, si, slot)

    def to_active(self, ndev=0):
        """create (1 device), open, configure 4 x 64 KiB, both open the set's device, agent."""
        self.create(ndev=ndev).s_open().begin().request(size=1, count=2).end()
        return self.get_config().s_open_device().c_open_device().agent()


api_seed = Seeds()


@api_seed("backup-one-device", "the thin path: configure, one Write, complete, close normally")
def _(a):
    a.to_active().allocate(size=1).send(cmd=0, how=0, buf=0, pos=7)
    a.get_command().complete(which=0, pos=4096).close_device().get_command()
    a.s_close().c_close()


@api_seed("states-before-create", "every call on objects in DNE: PROTOCOL, INVALID for NULL")
def _(a):
    a.get_config().c_open_device().c_close().c_abort().s_get_config().begin().end().agent()
    a.s_close().s_abort().allocate().query().s_open_device()
    a.create(flags=NULL_HANDLE).s_open(flags=NULL_HANDLE)


@api_seed("bad-create", "create: bad instance, names and VDConfig fields (8.2, 8.6), then BUSY")
def _(a):
    a.create(inst=5).create(inst=6).create(name=6).create(name=7).create(name=9)
    a.create(ndev=6).create(ndev=7).create(feat=4).create(feat=5).create(align=5)
    a.create(align=6).create(prefix=4).create(flags=NULL_OUT).create().create(ci=1)


@api_seed("bad-begin", "begin_configuration parameters (8.5), then a second begin")
def _(a):
    a.create().s_open().begin(feat=4).begin(feat=5).begin(feat=6).begin(bs=5).begin(bs=6)
    a.begin(bs=7).begin(asel=3).begin(asel=4).begin(mts=3).begin(mts=4).begin().begin()


@api_seed("get-config-timeout", "client get_configuration times out until end_configuration")
def _(a):
    a.create().get_config().get_config(timeout=1).s_open().get_config().begin().get_config()
    a.request().end().get_config().get_config().s_get_config()


@api_seed("premature-server-close", "server close with a command outstanding: PROTOCOL, 995")
def _(a):
    a.to_active().allocate().send(cmd=3).send(cmd=4).get_command().s_close().get_command()
    a.c_close()


@api_seed("client-abort-drain", "client signal_abort: the agent drains both commands with 995")
def _(a):
    a.to_active().allocate().allocate().send(cmd=1, buf=0).send(cmd=2, buf=1)
    a.get_command().c_abort().get_command().complete(which=1).s_close().c_close()


@api_seed("send-rows", "send_command rows 2, 4, 5, 6 and 7 of the table in VDI-SPEC 4")
def _(a):
    a.create().s_open().begin().request().end().get_config().s_open_device().c_open_device()
    a.allocate().send(cmd=0).agent().send(cmd=1, code=9).send(cmd=1, code=7)
    a.send(cmd=1, zsel=2).send(cmd=1, zsel=3).send(cmd=1, how=7).send(cmd=1, how=6)
    a.send(cmd=1, code=4, how=6).send(cmd=5).send(cmd=5)
    a.get_command().get_command().complete(which=1, code=4).send(cmd=6)
    a.send(cmd=7, code=4, how=6).get_command().complete(which=7, code=0).send(cmd=8)
    a.send(cmd=10, flood=True).close_device().s_close().c_close()


@api_seed("buffers", "allocate, is_shared, free: zone starts, ends, sizes (VDI-SPEC 4)")
def _(a):
    a.create(prefix=2).s_open().begin().request(size=0, count=3).end()
    a.allocate(size=0).allocate(size=0).is_shared(how=0, buf=0).is_shared(how=2, buf=0)
    a.is_shared(how=3, buf=0).is_shared(how=4, buf=1).free(how=1, buf=0).free(ssel=1)
    a.free(how=0, buf=0).free(how=0, buf=0).is_shared(buf=0).allocate(size=5)
    a.query(size=0).query(size=5).allocate(huge=0xEE).s_close().c_close()


@api_seed("devices", "device naming: slot 0, first-come binding, PROTOCOL/OPEN/INVALID (8.10)")
def _(a):
    a.create(ndev=4).s_open().begin().request().end().get_config()
    a.s_open_device(name=3).c_open_device(name=4).s_open_device(name=5)
    a.c_open_device(name=0).c_open_device(name=0).c_open_device(name=6)
    a.s_open_device(name=0).s_open_device(name=0).s_open_device(name=4)
    a.c_open_device(ci=0, name=3).s_open_device().s_close().c_close()


@api_seed("secondary", "a secondary client before and after the primary's get_configuration")
def _(a):
    a.create().secondary().s_open().begin().request().end().secondary(ci=1)
    a.get_config().secondary(ci=1).secondary(ci=1).get_config(ci=1).c_close(ci=1)
    a.c_close().s_close()


@api_seed("buffer-handles", "get_buffer_handle / map_buffer_handle across the client's mapping")
def _(a):
    a.to_active().allocate().allocate().send(cmd=0, buf=1).get_command()
    a.get_handle(how=0, buf=1).get_handle(how=1, buf=1, ok=False).map_handle(which=0)
    a.map_handle(which=1).free(buf=1).map_handle(which=0).close_device()
    a.complete(which=0).get_command().s_close().c_close()


@api_seed("io-error", "ERROR_IO_DEVICE puts the device in I/O-error state; ClearError leaves")
def _(a):
    a.to_active().allocate().send(cmd=0).get_command().complete(which=0, code=4)
    a.send(cmd=1).send(cmd=2, code=4, how=6).get_command().complete(which=2, code=0)
    a.send(cmd=3).get_command().complete(which=3).close_device().get_command()
    a.s_close().c_close()


@api_seed("client-close-open-device", "client close with an unfinished device: OPEN, aborts")
def _(a):
    a.to_active().allocate().send(cmd=0).c_close().send(cmd=1).s_get_config().s_close()


def make(fn):
    a = Api()
    fn(a)
    return bytes(a.b)


def main():
    api_seed.write(here_seed_dir(__file__),
                   ["# fuzz_api seeds (written by ../gen_seeds.py; do not edit by hand)", ""],
                   make)


if __name__ == "__main__":
    main()
