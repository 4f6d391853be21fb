#!/usr/bin/env python3
"""Crash signature: reads what a fuzz target printed when it failed on one input (stdin or
a file) and prints one line, "<kind>-<12 hex digits>", that names the bug rather than the
input. Two crash files with the same signature are the same finding; ci/fuzz.sh stores
one file per signature under corpora/<target>/crash/.

The signature is built from three parts, each normalised so that addresses, step counts,
op indices and sizes do not split one bug into many:
  kind   the oracle or sanitizer that fired (ledger, contract, model, use-after-unmap, asan-heap-
         use-after-free, ubsan, timeout, ...);
  state  the protocol state it fired in: the actor and the finding's words for a chaos
         finding, whatever scenario reached it; the call and the expected and actual codes
         for a model mismatch; the report's first line otherwise;
  frames the top three stack frames outside the harness (the source tree's fuzz/, chaos/
         and tests/, matched relative to the source root, so a checkout inside a folder
         of such a name loses no frame; the sanitizer and fuzzer runtimes and libc).

Usage: crash_signature.py [LOG] [--explain] [--root DIR]
  --root DIR  the source tree the report's paths point into (default: this script's ../)"""
import hashlib
import os
import re
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The harness's own folders, relative to the source root.
HARNESS_DIRS = re.compile(r"^(fuzz|chaos|tests)/")
RUNTIME = re.compile(
    r"(compiler-rt|/libfuzzer|Fuzzer[A-Z]\w*\.cpp|sanitizer_common|/asan/|/ubsan/|/tsan/|"
    r"libc\.so|libc-|libc_start|/nptl/|/sysdeps/|afl_driver)"
)
RUNTIME_FN = re.compile(r"^(__asan|__ubsan|__tsan|__sanitizer|__interceptor|fuzzer::|"
                        r"LLVMFuzzer|abort$|raise$|__GI_|_start$|main$|start_thread|clone)")


def normalise(text):
    text = re.sub(r"0x[0-9a-fA-F]+", "ADDR", text)
    text = re.sub(r"\b\d+\b", "N", text)
    return re.sub(r"\s+", " ", text).strip()


def kind_and_state(log):
    m = re.search(r"==vdichaos== finding in scenario (\S+)[^\n]*\n([\w-]+): actor \d+ "
                  r"\(([^)]*)\), step \d+: ([^\n]*)", log)
    if m:
        # Not the scenario: one bug reached through two scenarios is one finding.
        return m.group(2), "%s: %s" % (m.group(3), normalise(m.group(4)))
    m = re.search(r"==(fuzz_\w+)== mismatch at op \d+ \(([^)]*)\): ([^\n]*)", log)
    if m:
        return "model", "%s %s" % (m.group(2), normalise(m.group(3)))
    m = re.search(r"==(fuzz_\w+)== ([^\n]*)", log)
    if m:
        return "oracle", normalise(m.group(2))
    m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", log)
    if m:
        return "asan-" + m.group(1), ""
    m = re.search(r"ERROR: LeakSanitizer", log)
    if m:
        return "leak", ""
    m = re.search(r"WARNING: ThreadSanitizer: ([^\n(]+)", log)
    if m:
        return "tsan", normalise(m.group(1))
    m = re.search(r"runtime error: ([^\n]*)", log)
    if m:
        return "ubsan", normalise(m.group(1))
    m = re.search(r"ERROR: libFuzzer: ([\w-]+)", log)
    if m:
        return m.group(1), ""
    if re.search(r"Hang|timeout", log, re.I):
        return "timeout", ""
    return "crash", normalise((log.strip().splitlines() or [""])[-1])[:120]


def in_harness(where, root):
    """A frame's location (path[:line[:col]], or a module) in the harness or a runtime."""
    if RUNTIME.search(where):
        return True
    path = where.split(":")[0]
    if os.path.isabs(path):
        path = os.path.normpath(path)
        if not path.startswith(root + os.sep):
            return False  # outside the tree: a client's or a library's own code
        path = path[len(root) + 1:]
    return HARNESS_DIRS.match(path) is not None


def frames(log, n=3, root=ROOT):
    out = []
    for m in re.finditer(r"^\s*#\d+ 0x[0-9a-f]+ in (\S+) (\S+)", log, re.M):
        fn, where = m.group(1), m.group(2)
        if in_harness(where, root) or RUNTIME_FN.search(fn):
            continue
        if fn not in out:
            out.append(fn)
        if len(out) == n:
            break
    return out


def signature(log, root=ROOT):
    kind, state = kind_and_state(log)
    top = frames(log, root=root)
    kind = re.sub(r"[^\w-]", "_", kind).lower()
    digest = hashlib.sha1("|".join([kind, state] + top).encode()).hexdigest()[:12]
    return "%s-%s" % (kind, digest), kind, state, top


def main(argv):
    explain = "--explain" in argv
    args = [a for a in argv[1:] if a != "--explain"]
    root = ROOT
    if "--root" in args:
        i = args.index("--root")
        if i + 1 >= len(args):
            print("crash_signature.py: --root wants a folder", file=sys.stderr)
            return 2
        root = os.path.realpath(args[i + 1])
        del args[i:i + 2]
    if len(args) > 1:
        print("usage: crash_signature.py [LOG] [--explain] [--root DIR]", file=sys.stderr)
        return 2
    try:
        log = open(args[0], errors="replace").read() if args else sys.stdin.read()
    except OSError as e:
        print("crash_signature.py: %s" % e, file=sys.stderr)
        return 2
    name, kind, state, top = signature(log, root)
    print(name)
    if explain:
        print("kind:   %s\nstate:  %s\nframes: %s" % (kind, state, " < ".join(top) or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
