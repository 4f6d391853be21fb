#!/usr/bin/env python3
"""ci/crash_signature.py keeps the frames of the code under test wherever the checkout
lives: a tree under a folder named fuzz/ (as OSS-Fuzz's /src/... or a user's ~/fuzz/)
loses no frame, the harness's own folders (relative to the root) and the runtimes are
dropped, and the same bug in two checkouts has one signature."""
import os
import subprocess
import sys

script = sys.argv[1]
failed = 0


def frame_log(root):
    return ("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020 at pc 0x1\n"
            "    #0 0x4a1 in vdi_drain %s/ref/src/vdi_server.c:120:5\n"
            "    #1 0x4a2 in __asan_memcpy /usr/src/compiler-rt/lib/asan/asan_x.cpp:1\n"
            "    #2 0x4a3 in run_op %s/fuzz/fuzz_api.c:300:9\n"
            "    #3 0x4a4 in chaos_run %s/chaos/src/chaos_engine.c:700:2\n"
            "    #4 0x4a5 in vdi_close %s/ref/src/vdi_core.c:50:1\n"
            "    #5 0x4a6 in client_main /opt/vendor/fuzz/client.c:10:1\n"
            % (root, root, root, root))


def explain(root, log):
    p = subprocess.run([sys.executable, script, "--explain", "--root", root], input=log,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("crash_signature.py exited %d: %s" % (p.returncode, p.stderr))
    lines = p.stdout.splitlines()
    return lines[0], [l for l in lines if l.startswith("frames:")][0]


want = "frames: vdi_drain < vdi_close < client_main"
sigs = set()
for root in ("/src/vdichaos", "/home/u/fuzz/vdichaos", "/w/tests/chaos/x"):
    sig, fr = explain(root, frame_log(root))
    sigs.add(sig)
    if fr != want:
        print("root %s: %s, want %s" % (root, fr, want))
        failed += 1
if len(sigs) != 1:
    print("one bug, several signatures: %s" % sorted(sigs))
    failed += 1
p = subprocess.run([sys.executable, script, "/nonexistent/log"], capture_output=True)
if p.returncode != 2:
    print("an unreadable log exited %d, not 2" % p.returncode)
    failed += 1
print("t_crash_signature: %s" % ("FAILED" if failed else "ok, %s" % want))
sys.exit(1 if failed else 0)
