#!/usr/bin/env python3
"""gen_seeds.py: writes the readable seed inputs of fuzz_peer into seed/ next to this
script, one file per documented hostile plan, and seed/README.md saying what each does. The
encoder mirrors decode() in fuzz/fuzz_peer.c byte for byte. With the default schedule (no
schedule bytes) the server configures, sends every command and closes its devices by
schedule point 19; the client configures at point 23 and takes commands from 25 on, so
writes at points 20-24 hit the rings before the client reads them."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from seedlib import Seeds, here_seed_dir  # noqa: E402

SERVER, CLIENT, EITHER = 1, 2, 3
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def forging_table():
    """[(name, writer)] in the order of fields[] in fuzz/fuzz_peer.c, read from where that
    table comes from: the layout's tables (ref/src/vdi_layout.h) and the peer's decision on
    each of their fields (fuzz/fuzz_peer_fields.h). A name that an earlier field has gets
    its table's name after a dot (the device's server_closed: server_closed.dev)."""
    def text(path):
        with open(os.path.join(ROOT, path)) as f:
            return f.read().replace("\\\n", " ")
    layout, decisions = text("ref/src/vdi_layout.h"), text("fuzz/fuzz_peer_fields.h")
    tables = {}
    for t, body in re.findall(r"#define VDI_(\w+)_SHM\(F[^)]*\)(.*)", layout):
        tables[t] = re.findall(r"\bF\(\s*\d+,\s*\w+,\s*(\w+),\s*[^,]*,\s*(\w+)\)", body)
    decide = {(t, f): (d, arg) for t, f, d, arg in re.findall(
        r"#define FORGE_(CTL|ID|CFG|DEV|CMD|CPL|BUF)_(\w+)\s+(\w+)(?:\((\w+)\))?", decisions)}
    side = dict(re.findall(r"#define BY_OF_(\w+) BY_(\w+)", decisions))
    by = {"SERVER": SERVER, "CLIENT": CLIENT, "EITHER": EITHER}
    inside = {"ID": "PEER_ID", "CFG": "CONFIG"}
    out = []

    def add(name, writer, table):
        if any(n == name for n, _ in out):
            name += "." + table.lower()
        out.append((name, by[side[writer]]))

    for t, pre in (("CTL", ""), ("DEV", ""), ("CMD", "cmd."), ("CPL", "cpl."), ("BUF", "buf.")):
        for f, w in tables[t]:
            d, arg = decide[(t, f)]
            if d in ("FORGE", "FORGE_WAITED"):
                add(pre + f, w, t)
            elif d == "FIRST":
                add(pre + f + "[0]", w, t)
            elif d == "INSIDE":
                for g, gw in tables[inside[arg]]:
                    if decide[(arg, g)][0] == "FORGE":
                        add("%s.%s" % (f, g), w if gw == "W" else gw, t)
    return out


FIELDS = forging_table()
SERVER_LIES, CLIENT_LIES, BOTH_LIE = range(3)
MAGIC = [0, 1, 2, 3, 64, 65, 0xffffffff, 0x80000000, 65536, 1 << 30, (1 << 30) - 65536,
         0x7fffffff, 4096, 19, 20, (1 << 64) - 1]
STEPS = [1, 1, -1, 2, 64, -64, 4, -4, 65]
BUFSIZES = [4096, 65536, 5000]
TIMEOUTS = [0, 0, 0, 100]
CODES = ["Write", "Write", "Read", "Flush", "ClearError", "WriteMark", "GetPosition"]
FAIL = {"IO_DEVICE": 224, "HANDLE_EOF": 225, "DISK_FULL": 226, "INVALID_PARAMETER": 227}


class Peer:
    def __init__(self, mode, ndev=1, ncmd=2, bufsize=65536, timeout=0, codes=None,
                 outcomes=None):
        self.mode = mode
        mask = {SERVER_LIES: SERVER, CLIENT_LIES: CLIENT, BOTH_LIE: EITHER}[mode]
        self.pool = [n for n, w in FIELDS if w & mask]
        self.b = bytearray([mode, ndev - 1, ncmd - 1, BUFSIZES.index(bufsize),
                            TIMEOUTS.index(timeout)])
        for d in range(ndev):
            for k in range(ncmd):
                code = (codes or {}).get((d, k), "Write")
                out = (outcomes or {}).get((d, k), 0)
                self.b += bytes([CODES.index(code), FAIL.get(out, 0) if isinstance(out, str)
                                 else out])
        self.at = 0
        self.sched = b""

    def forge(self, at, field, value=None, dev=0, idx=0, bump=None, flip=None):
        """At schedule point `at`, set `field` (of device `dev`, ring or table entry `idx`)
        to value (a MAGIC entry or any u32), or bump it by a STEPS entry, or flip a bit."""
        delta = at - self.at
        assert 0 <= delta < 256, "points must increase by less than 256"
        self.at = at
        self.b += bytes([delta, self.pool.index(field), dev, idx])
        if bump is not None:
            self.b += bytes([1, STEPS.index(bump)])
        elif flip is not None:
            self.b += bytes([2, flip])
        elif value in MAGIC:
            self.b += bytes([0, MAGIC.index(value)])
        else:
            self.b += bytes([0, 16]) + value.to_bytes(4, "little")
        return self

    def schedule(self, decisions):
        self.sched = bytes(decisions)
        return self

    def encode(self):
        n = len(self.sched)
        return bytes([n & 0xff, n >> 8]) + bytes(self.b) + self.sched


seed = Seeds()


@seed("clean-one-device", "no hostile write: one device, two Writes, a normal end")
def _():
    return Peer(SERVER_LIES)


@seed("clean-two-devices", "no hostile write: two devices, six commands of every kind, "
      "errors completed, an interleaved schedule")
def _():
    codes = {(0, 1): "Read", (0, 2): "Flush", (1, 0): "ClearError", (1, 3): "GetPosition",
             (1, 4): "WriteMark"}
    outs = {(0, 3): "HANDLE_EOF", (1, 2): "DISK_FULL", (1, 5): "INVALID_PARAMETER"}
    return Peer(BOTH_LIE, ndev=2, ncmd=6, bufsize=5000, codes=codes,
                outcomes=outs).schedule([1, 2, 3, 1, 0, 2, 4, 1] * 12)


@seed("transfer-raised", "the server raises maxTransferSize after the client's "
      "get_configuration, then a Write claims 128 KiB (the negotiated maximum is 64 KiB); "
      "once a finding, now fixed (corpora/fuzz_peer/crash/)")
def _():
    p = Peer(SERVER_LIES)
    return p.forge(24, "cfg.maxTransferSize", 0x80000000).forge(24, "cmd.size", 131072)


@seed("area-raised", "the server claims a 1 GiB area it never backed and points a command "
      "48 MiB into it; once a finding, now fixed (corpora/fuzz_peer/crash/)")
def _():
    p = Peer(SERVER_LIES)
    return p.forge(24, "area_size", (1 << 30) - 65536).forge(24, "cmd.buf_off", 0x3000000)


@seed("cmd-ring", "forged command entries: the head jumps a ring ahead, a code out of range, "
      "a size of 0, a buffer offset past the area")
def _():
    p = Peer(SERVER_LIES, ncmd=4)
    p.forge(20, "cmd.code", 20, idx=0).forge(21, "cmd.size", 0, idx=1)
    return p.forge(22, "cmd.buf_off", (1 << 64) - 1, idx=2).forge(30, "cmd_head", bump=64)


@seed("server-state-words", "the server's state words flip: configured before configuration, "
      "server_closed and normal_end mid-stream, a device closed then reopened")
def _():
    p = Peer(SERVER_LIES, ndev=2, ncmd=3)
    p.forge(1, "configured", 1).forge(2, "configured", 0).forge(26, "normal_end", 1)
    p.forge(27, "server_closed", 1).forge(28, "server_closed.dev", 0, dev=0)
    return p.forge(30, "server_closed.dev", 1, dev=1).forge(31, "cfg.blockSize", 3)


@seed("buffer-table", "the buffer table lies: offsets and sizes of live entries rewritten")
def _():
    p = Peer(SERVER_LIES, ncmd=3)
    p.forge(20, "buf.off", 0, idx=0).forge(20, "buf.off", (1 << 30), idx=1)
    return p.forge(21, "buf.size", 0xffffffff, idx=2).forge(22, "buf.off", 1, idx=5)


@seed("cpl-ring", "forged completions: the head jumps, a tag of another slot, more bytes than "
      "the command, a code nobody gave")
def _():
    p = Peer(CLIENT_LIES, ncmd=4)
    p.forge(28, "cpl.bytes", 0x7fffffff, idx=0).forge(29, "cpl.tag", 1, idx=0)
    return p.forge(40, "cpl.code", 0x12345678, idx=1).forge(41, "cpl_head", bump=65)


@seed("client-config-words", "the client rewrites its configuration after create: device "
      "count, a 4 GiB prefix zone, a bad alignment, a 1 ms watchdog")
def _():
    p = Peer(CLIENT_LIES, ndev=2, ncmd=2, timeout=100)
    p.forge(1, "cfg.prefixZoneSize", 0xffffffff).forge(1, "cfg.alignment", 3)
    p.forge(2, "cfg.deviceCount", 65).forge(10, "cfg.serverTimeOut", 1)
    return p.forge(30, "cmd_tail", bump=-1)


@seed("device-table", "the device table is rewritten under both sides: owners, names, "
      "bindings and the server's open flag")
def _():
    p = Peer(BOTH_LIE, ndev=2, ncmd=2)
    p.forge(5, "bound", 0, dev=1).forge(6, "name_len", 200, dev=1).forge(7, "name[0]", 0, dev=1)
    return p.forge(23, "client_owner", 7, dev=1).forge(24, "server_open", 0, dev=0)


@seed("forged-abort", "the shared aborted word is set without a wake (the pending finding, "
      "worked around by the reaper's close)")
def _():
    return Peer(BOTH_LIE, ncmd=3).forge(17, "aborted", 1)


@seed("sequence-noise", "every futex word bumped or zeroed at random points: wake-ups must "
      "stay spurious, never lost or invented")
def _():
    p = Peer(BOTH_LIE, ndev=2, ncmd=4)
    for i, f in enumerate(["state_seq", "agent_seq", "cmd_seq", "state_seq", "cmd_seq",
                           "agent_seq"]):
        p.forge(5 + i * 9, f, dev=i % 2, bump=1 if i % 2 else -1)
    return p.schedule([2, 1, 0, 3, 4, 1] * 20)


class Forger:
    """Mode 0xc0 (the forging server): the real server configures and allocates; the plan
    after the per-command bytes is the forger's, one action after another (forger() in
    fuzz/fuzz_peer.c). An entry is valid unless forged=K (K of write_entry's 16 faults)."""
    def __init__(self, ndev=1, ncmd=4, bufsize=65536, outcomes=None):
        self.b = bytearray([0xc0, ndev - 1, ncmd - 1, BUFSIZES.index(bufsize), 0])
        for d in range(ndev):
            for k in range(ncmd):
                self.b += bytes([0, (outcomes or {}).get((d, k), 0)])

    def publish(self, dev, entries):
        """entries: a list of dicts (code index, forged, size_sel, buf_sel, pos)."""
        assert 1 <= len(entries) <= 16
        self.b += bytes([3 if len(entries) > 4 else 0, dev, len(entries) - 1])
        for e in entries:
            f = e.get("forged")
            self.b += bytes([e.get("code", 0), 0 if f is None else 176 + f, e.get("size", 0),
                             e.get("buf", 0), e.get("pos", 0)])
        return self

    def jump(self, dev, which=0):
        self.b += bytes([4, dev, which])
        return self

    def close(self, dev):
        self.b += bytes([5, dev])
        return self

    def yield_(self, n):
        self.b += bytes([6, 0, n])
        return self

    def encode(self):
        return bytes([0, 0]) + bytes(self.b)


VALID = {}


@seed("forged-ring-clean", "the forging server writes the rings itself: valid commands of "
      "every size on two devices, in batches, each device closed after its last")
def _():
    f = Forger(ndev=2, ncmd=4)
    f.publish(0, [VALID, {"size": 1}, {"code": 2, "size": 2}])
    f.publish(1, [{"code": 4}, {"code": 2, "size": 3, "pos": 9}]).yield_(5)
    f.publish(0, [{"code": 5}, {"code": 6}]).close(0)
    return f.publish(1, [{"size": 2, "buf": 1}] * 6).close(1)


@seed("forged-ring-slot-reuse", "a valid command, then one whose tag names the slot the "
      "client still holds (VDI-SPEC 7: rejected with VD_E_ABORT)")
def _():
    return Forger(ncmd=2, outcomes={(0, 1): 0x40}).publish(0, [VALID]).yield_(4).publish(
        0, [{"forged": 2}])


@seed("forged-ring-oversize", "a data command one byte above the negotiated "
      "maxTransferSize, after a valid one")
def _():
    return Forger(ncmd=2).publish(0, [VALID]).yield_(2).publish(0, [{"forged": 10}])


@seed("forged-ring-head-jump", "the command head published 66 entries past the tail")
def _():
    return Forger(ncmd=2).publish(0, [VALID]).yield_(2).jump(0)


@seed("forged-ring-buffers", "buffer offsets past the area, wrapping past zero, at the "
      "reservation's end, none for a write (one each, on four devices)")
def _():
    f = Forger(ndev=4, ncmd=1)
    for d, k in enumerate((12, 14, 13, 11)):
        f.publish(d, [{"forged": k}])
    return f


def main():
    """Writes the seeds into seed/, or into the folder given (corpus_fuzz_peer_seeds
    compares the two)."""
    seed.write(sys.argv[1] if len(sys.argv) > 1 else here_seed_dir(__file__),
               ["# fuzz_peer seeds (written by ../gen_seeds.py; do not edit by hand)", "",
                "`FUZZ_PEER_TRACE=1 fuzz_peer_replay FILE` prints every hostile write.", ""],
               lambda fn: fn().encode())


if __name__ == "__main__":
    main()
