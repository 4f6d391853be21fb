#!/usr/bin/env python3
"""gen_seeds.py: writes the readable seed inputs of fuzz_config into seed/ next to this
script, one file per documented call sequence, and seed/README.md saying what each does.
The encoder mirrors the decoder of fuzz/fuzz_config.c byte for byte: one op byte, then the
op's arguments (table indexes, one byte each)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from seedlib import Seeds, here_seed_dir  # noqa: E402

(CREATE, OPEN, BEGIN, REQUEST, QUERY, END, CLIENT_CONFIG, SERVER_CONFIG, ALLOCATE, FILL,
 FREE, IS_SHARED, SERVER_DEVICE, CLIENT_DEVICE, CHECK_CLIENT, ALLOCATE_REQUESTED) = range(16)

# tables of fuzz/fuzz_config.c
C_INSTS = [None, None, None, "inst", "", "abcdefghijklmnop", "abcdefghijklmnopq", "a/b"]
NDEVS = [1, 2, 3, 4, 64, 0, 65, 0xffffffff]
FEATS = [0, 0x2000, 0x173, 0x200, 0x3FF3, 0x80000000, 0x10000, 0x4000, 0x20000, 0x80003FF3]
PREFIXES = [0, 0, 64, 512, 65536, 65537, 4096, 1]
CALIGNS = [0, 0, 512, 4096, 65536, 3, 131072, 1, 8]
NAME_LENS = [1, 3, 8, 126, 127, 128, 0, 16, 17, 40]
S_FEATS = ["WM", "RM", "WM|CE", "RM|CE", "0", "WM|RM", "Removable|WM", "CE"]
BLOCKS = [512, 4096, 65536, 1024, 0, 513, 131072, 256, 2048, 32768]
ALIGN_SEL = ["0", "block", "65536", "block/2", "3", "131072"]
TRANSFERS = [65536, 131072, 0, 1000, 65536 * 16, 0x7fff0000, 0xffff0000, 65537]
SIZES = [4096, 1, 512, 65536, 5000, 65537, 131072, 300000, 0, 0x80000000, 0x80000001,
         1 << 30, 100]
ALIGNS = [0, 0, 512, 4096, 65536, 3, 131072, 1, 2, 8192, 256]
COUNTS = [1, 2, 3, 4, 8, 16, 0, 0xffffffff]


class Config:
    def __init__(self):
        self.b = bytearray()

    def op(self, code, *args):
        self.b += bytes([code]) + bytes(args)
        return self

    @staticmethod
    def name(length, mix=0, salt=0, raw=b""):
        """A generated name: total length from NAME_LENS; mix 0 letters, 1 printable,
        2 one bad byte, 3 raw (16 bytes follow)."""
        b = bytes([NAME_LENS.index(length), mix, salt])
        return b + (raw.ljust(16, b"A")[:16] if mix == 3 else b"")

    def create(self, inst=None, name=0, gen=None, ndev=1, feat=0, prefix=0, align=0,
               sfm=0, eom=0, junk=0):
        """name 0-2: the stem and that digit; gen: a generated name (see name())."""
        b = bytes([C_INSTS.index(inst), 3 if gen is not None else name]) + (gen or b"")
        b += bytes([NDEVS.index(ndev), FEATS.index(feat), PREFIXES.index(prefix),
                    CALIGNS.index(align), sfm, eom, junk])
        return self.op(CREATE, *b)

    def open(self, inst=0, name=0, gen=None):
        """inst 0: as created, 1 NULL, 2 "", 3 "inst", 4 "x/y"; name 0: as created,
        2: another name, 3: generated."""
        return self.op(OPEN, inst, 3 if gen is not None else name, *(gen or b""))

    def begin(self, feat="WM", block=4096, align="0", transfer=65536, timeout=0):
        return self.op(BEGIN, S_FEATS.index(feat), BLOCKS.index(block), ALIGN_SEL.index(align),
                       TRANSFERS.index(transfer), timeout)

    def request(self, size=4096, align=0, count=1):
        return self.op(REQUEST, SIZES.index(size), ALIGNS.index(align), COUNTS.index(count))

    def query(self, size=4096, align=0):
        return self.op(QUERY, SIZES.index(size), ALIGNS.index(align))

    def end(self):
        return self.op(END)

    def cconfig(self):
        return self.op(CLIENT_CONFIG)

    def sconfig(self):
        return self.op(SERVER_CONFIG)

    def allocate(self, size=4096, align=0):
        return self.op(ALLOCATE, SIZES.index(size), ALIGNS.index(align))

    def fill(self, size=4096, align=0):
        return self.op(FILL, SIZES.index(size), ALIGNS.index(align))

    def free(self, variant=0, which=0):
        """variant 0 exact, 1 size + 1, 2 address + 1, 3 every buffer."""
        return self.op(FREE, variant, which)

    def is_shared(self, variant=0, which=0):
        """variant 0 start, 1 last byte, 2 end, 3 start - 1, 4 prefix zone start."""
        return self.op(IS_SHARED, variant, which)

    @staticmethod
    def dev_name(sel, gen=b""):
        """sel 0-1 the set's name, 2-5 "dev0".."dev3", 6 "d" + generated, 7 generated."""
        return bytes([sel]) + (gen if sel >= 6 else b"")

    def sdev(self, sel=0, gen=b""):
        return self.op(SERVER_DEVICE, *self.dev_name(sel, gen))

    def cdev(self, sel=0, gen=b""):
        return self.op(CLIENT_DEVICE, *self.dev_name(sel, gen))

    def check(self):
        return self.op(CHECK_CLIENT)

    def requested(self, order=0):
        """order 0 as requested, 1 last first, 2 largest first."""
        return self.op(ALLOCATE_REQUESTED, order)

    def configured(self, ndev=1, feat=0, prefix=0, align=0, block=4096):
        self.create(ndev=ndev, feat=feat, prefix=prefix, align=align).open()
        return self.begin(block=block)


seed = Seeds()


@seed("thin", "create, open, configure four 4 KiB buffers, both configurations, allocate them, "
      "the client's view, both sides open the device")
def _(c):
    c.create(ndev=1, feat=0x2000).open().begin(feat="WM|CE").request(4096, 0, 4).query(4096, 0)
    c.end().cconfig().sconfig().requested().check().sdev(0).cdev(0).sdev(0).cdev(1)


@seed("states-before", "every call before create and before open: PROTOCOL, or TIMEOUT for the "
      "client's get_configuration")
def _(c):
    c.cconfig().sconfig().begin().request().query().end().allocate().sdev().cdev().open()
    c.create(ndev=2).cconfig().begin().request().end().allocate().cdev().open().cconfig()


@seed("bad-create", "create: bad instances, names of 0, 128 bytes and a bad byte, and every "
      "VDConfig field out of range (8.2, 8.6), then a good create and a second one")
def _(c):
    c.create(inst="").create(inst="abcdefghijklmnopq").create(inst="a/b")
    c.create(gen=Config.name(0)).create(gen=Config.name(128)).create(gen=Config.name(40, 2, 5))
    c.create(ndev=0).create(ndev=65).create(ndev=0xffffffff).create(feat=0x4000)
    c.create(feat=0x10000).create(prefix=65537).create(align=3).create(align=131072)
    c.create(gen=Config.name(127, 1, 9), ndev=64, feat=0x80003FF3, prefix=65536, align=65536,
             sfm=7, eom=9, junk=0xff)
    c.create().open().sconfig().begin().end().cconfig().sconfig()


@seed("instance", "a set in instance \"inst\": the server finds it only in that instance")
def _(c):
    c.create(inst="inst", ndev=2).open(inst=1).open(inst=2).open(inst=4).open(name=2)
    c.open(inst=0).begin().end().cconfig()


@seed("bad-begin", "begin_configuration: bad features, block sizes, alignments and transfer "
      "sizes (8.5), then a good one and a second one")
def _(c):
    c.create().open()
    for feat in ["0", "WM|RM", "Removable|WM", "CE"]:
        c.begin(feat=feat)
    for block in [0, 513, 131072, 256]:
        c.begin(block=block)
    for align in ["block/2", "3", "131072"]:
        c.begin(align=align)
    for transfer in [0, 1000, 65537]:
        c.begin(transfer=transfer)
    c.begin(transfer=0x7fff0000)
    c.begin(feat="RM|CE", block=65536, align="65536", transfer=65536 * 16).begin().sconfig()


@seed("memory-end", "requests summing past 1 GiB: end_configuration is MEMORY and discards "
      "them (8.9); small requests then end normally")
def _(c):
    c.configured().request(1 << 30, 0, 1).request(0x80000001, 65536, 0xffffffff).query()
    c.end().query().request(5000, 4096, 3).query(5000, 4096).end().requested(1).check()


@seed("summed", "several requests of mixed geometry, queries before and after "
      "end_configuration agree, and all requested buffers fit at once, largest first")
def _(c):
    c.configured(ndev=2, prefix=512, align=4096, block=512)
    c.request(4096, 0, 4).request(65537, 512, 2).request(1, 2, 16).request(100, 8192, 3)
    c.query(4096, 0).query(1, 0).query(65536, 65536).query(300000, 0).query(100, 256)
    c.end().requested(2).check().sconfig().cconfig()


@seed("fill", "query then allocate exactly that many, the next one is MEMORY; free them all, "
      "again with other geometries")
def _(c):
    c.configured(prefix=64).request(65536, 0, 8).end().cconfig()
    c.fill(65536, 0).check().free(3).fill(5000, 4096).free(3).fill(4096, 65536).check()
    c.free(3).fill(1, 0).free(3).fill(131072, 512).check()


@seed("geometry", "64 KiB blocks, prefix zones and alignments; allocations at every "
      "alignment, is_shared_buffer at zone edges, free with bad sizes and addresses")
def _(c):
    c.configured(ndev=1, prefix=65536, align=65536, block=65536)
    c.request(5000, 0, 4).request(1, 3, 2).end().cconfig()
    for size, align in [(5000, 0), (1, 512), (4096, 65536), (65537, 2), (100, 8192)]:
        c.allocate(size, align)
    c.allocate(0, 0).allocate(0x80000001, 0).allocate(4096, 3).allocate(4096, 131072)
    for v in range(5):
        c.is_shared(v, 1).is_shared(v, 3)
    c.free(1, 0).free(2, 1).free(0, 2).is_shared(0, 2).check().free(3)


@seed("grow", "request_buffers after configuration grows the area at once; the client follows "
      "it through its get_configuration and the buffer handles")
def _(c):
    c.configured(prefix=4096).request(4096, 0, 1).end().cconfig().allocate(4096)
    c.request(65536, 0, 4).allocate(65536).request(300000, 4096, 2).allocate(300000, 4096)
    c.check().request(1 << 30, 0, 1).sconfig().fill(65536, 0).check()


@seed("devices", "three devices: names bind free slots first-come on both sides; PROTOCOL for "
      "a device opened twice, INVALID when no slot is free, OPEN when all are open (8.10)")
def _(c):
    c.configured(ndev=3).end().cconfig()
    c.sdev(3).cdev(4).sdev(5).sdev(0).sdev(3).cdev(3).cdev(3).cdev(0).cdev(5)
    c.sdev(4).sdev(2).cdev(2).cdev(6, Config.name(8)).sdev(7, Config.name(128))


@seed("device-names", "device names of every length and byte: 0, 127 and 128 bytes, a bad "
      "byte, raw bytes, on both sides")
def _(c):
    c.configured(ndev=4).end().cconfig()
    c.sdev(7, Config.name(0)).sdev(7, Config.name(127, 1, 3)).sdev(7, Config.name(128))
    c.cdev(7, Config.name(40, 2, 0x31)).cdev(7, Config.name(16, 3, 0, b"\x01\x7f\x80\xff "))
    c.cdev(6, Config.name(127, 0, 1)).cdev(7, Config.name(127, 1, 3)).sdev(6, Config.name(3))


def make(fn):
    c = Config()
    fn(c)
    return bytes(c.b)


def main():
    seed.write(here_seed_dir(__file__),
               ["# fuzz_config seeds (written by ../gen_seeds.py; do not edit by hand)", "",
                "`FUZZ_CONFIG_TRACE=1 fuzz_config_replay FILE` prints every checked call.", ""],
               make)


if __name__ == "__main__":
    main()
