#!/usr/bin/env python3
"""gen_seeds.py: writes the readable seed inputs of fuzz_stream into seed/ next to this
script, one file per documented session, and seed/README.md saying what each does. The
encoder mirrors decode() in fuzz/fuzz_stream.c byte for byte."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from seedlib import Seeds, here_seed_dir  # noqa: E402

BLOCKS = [512, 4096, 65536, 1024, 2048]
TRANSFERS = [65536, 131072, 262144]
PREFIXES = [0, 0, 64, 512, 4096, 65536]
CALIGNS = [0, 0, 512, 4096, 65536]
BUFSIZES = [65536, 4096, 131072, 5000, 262144]
OFFS = [0, 0, 0, 1, 7, 512, 4096]
FAIL_BACKUP = 200   # + 0 IO_DEVICE, 1 DISK_FULL, 2 END_OF_MEDIA, 3 EOM_OVERFLOW, 4 EOF, 5 NOT_SUPPORTED
FAIL_RESTORE = 224  # outcome % 4: 0 IO_DEVICE, 1 NO_DATA_DETECTED, 2 FILEMARK, 3 INVALID_PARAMETER
IO_DEVICE, DISK_FULL, END_OF_MEDIA, EOM_OVERFLOW, EOF, NOT_SUPPORTED = range(6)
REVERSE, IO_TEST = 1, 2


class Stream:
    def __init__(self, ndev=1, block=512, transfer=65536, depth=1, hold=1, prefix=0,
                 calign=0, salign=0, bufsize=65536, complete=0):
        self.ndev = ndev
        self.p = bytearray([ndev - 1, BLOCKS.index(block), TRANSFERS.index(transfer),
                            depth - 1, hold - 1, PREFIXES.index(prefix), CALIGNS.index(calign),
                            salign, BUFSIZES.index(bufsize), complete])
        self.back = []
        self.rest = []
        self.sched = b""

    def extent(self, off, size):
        """off: an OFFS value; size: 'room', ('any', n) for 1 + n % room, ('tiny', n) for
        1 + n % 16, ('blocks', n) for (1 + n % 4) blocks."""
        b = bytes([OFFS.index(off)])
        if size == "room":
            return b + bytes([0])
        kind, n = size
        if kind == "any":
            return b + bytes([1, n & 0xff, n >> 8])
        return b + bytes([2 if kind == "tiny" else 3, n])

    def dev(self, d):
        return bytes([d]) if self.ndev > 1 else b""

    def write(self, d=0, off=0, size="room", seed=0, outcome=0, flags=0):
        self.back.append(self.dev(d) + self.extent(off, size) + bytes([seed, outcome, flags]))
        return self

    def read(self, d=0, off=0, size="room", outcome=0, flags=0):
        self.rest.append(self.dev(d) + self.extent(off, size) + bytes([outcome, flags]))
        return self

    def schedule(self, decisions):
        self.sched = bytes(decisions)
        return self

    def encode(self):
        prog = bytes(self.p) + bytes([len(self.back)]) + b"".join(self.back) + b"".join(self.rest)
        n = len(self.sched)
        return bytes([n & 0xff, n >> 8]) + prog + self.sched


seed = Seeds()


@seed("empty", "one device, nothing written: the device closes at once; the restore reads EOF at 0")
def _():
    return Stream()


@seed("one-device", "one device, four full 64 KiB Writes, read back in whole buffers")
def _():
    s = Stream(depth=2, hold=2)
    for i in range(4):
        s.write(seed=i)
    return s


@seed("three-devices", "three devices, sizes of every kind interleaved, pipelined, read back "
      "with sizes of every kind")
def _():
    s = Stream(ndev=3, block=4096, transfer=131072, depth=4, hold=3, bufsize=131072)
    sizes = ["room", ("any", 4097), ("tiny", 5), ("blocks", 2), ("any", 60000), "room"]
    for i, sz in enumerate(sizes * 2):
        s.write(d=i % 3, off=OFFS[i % 7], size=sz, seed=i)
    for i, sz in enumerate(sizes):
        s.read(d=(i + 1) % 3, off=OFFS[(i + 3) % 7], size=sz)
    return s.schedule([1, 2, 0, 3, 1, 1, 2, 0] * 8)


@seed("out-of-order", "the client holds up to four commands and completes them last first")
def _():
    s = Stream(ndev=2, depth=4, hold=4, bufsize=4096)
    for i in range(12):
        s.write(d=i % 2, size=("any", 1000 + 300 * i), seed=i, flags=REVERSE)
    for i in range(6):
        s.read(d=i % 2, size=("tiny", i), flags=REVERSE)
    return s


@seed("end-of-media", "a Write ends with ERROR_END_OF_MEDIA after 6/8 of its bytes; later "
      "Writes fail the same way; the restore reads back exactly the committed prefix")
def _():
    s = Stream(depth=3, hold=2, bufsize=5000)
    for i in range(6):
        s.write(seed=i, outcome=FAIL_BACKUP + END_OF_MEDIA if i == 3 else 0)
    # outcome 214: code (214 - 200) % 6 = END_OF_MEDIA, with (214 & 7) = 6/8 of the bytes
    s.back[3] = s.dev(0) + s.extent(0, "room") + bytes([3, 214, 0])
    return s


@seed("io-error-clear", "ERROR_IO_DEVICE on the second Write: the next send is refused "
      "(VD_E_IO_ERROR, 1117), ClearError is accepted and ends the state, a Flush goes through")
def _():
    s = Stream(ndev=2, depth=2, hold=1)
    for i in range(5):
        s.write(d=0, seed=i, outcome=FAIL_BACKUP + IO_DEVICE if i == 1 else 0, flags=IO_TEST)
        s.write(d=1, seed=i + 10)
    return s


@seed("disk-full-eof", "ERROR_DISK_FULL on one device and ERROR_HANDLE_EOF on the other "
      "end their backups early")
def _():
    s = Stream(ndev=2, block=1024, depth=2, hold=2, prefix=512, bufsize=4096)
    for i in range(6):
        s.write(d=0, size=("blocks", i), seed=i, outcome=FAIL_BACKUP + DISK_FULL if i == 4 else 0)
        s.write(d=1, size=("blocks", i + 1), seed=i, outcome=FAIL_BACKUP + EOF if i == 2 else 0)
    return s


@seed("restore-errors", "Reads fail with an I/O error and with NO_DATA_DETECTED, ending those "
      "devices' restores before EOF")
def _():
    s = Stream(ndev=3, depth=3, hold=3, bufsize=4096)
    for i in range(9):
        s.write(d=i % 3, seed=i)
    s.read(d=0, size=("tiny", 3))
    s.read(d=0, outcome=FAIL_RESTORE + 0)
    s.read(d=1, outcome=FAIL_RESTORE + 1)
    s.read(d=2, size=("any", 100))
    return s


@seed("geometry", "64 KiB blocks, a 64 KiB prefix zone and alignment, 256 KiB transfers "
      "and buffers")
def _():
    s = Stream(block=65536, transfer=262144, depth=2, hold=2, prefix=65536, calign=65536,
               salign=2, bufsize=262144, complete=3)
    s.write(off=4096, size=("any", 12345), seed=9)
    s.write(size="room", seed=1)
    return s


@seed("tiny-writes", "sixty-four Writes of 1 to 16 bytes at odd offsets, read back 7 at a time")
def _():
    s = Stream(depth=4, hold=3, bufsize=4096)
    for i in range(64):
        s.write(off=OFFS[i % 7], size=("tiny", i), seed=i)
    for i in range(20):
        s.read(off=7, size=("blocks", 0) if i % 5 == 0 else ("tiny", 6))
    return s.schedule(list(range(40)))


def main():
    seed.write(here_seed_dir(__file__),
               ["# fuzz_stream seeds (written by ../gen_seeds.py; do not edit by hand)", "",
                "Each seed is one backup session then one restore session; see "
                "fuzz/fuzz_stream.c.", ""],
               lambda fn: fn().encode())


if __name__ == "__main__":
    main()
