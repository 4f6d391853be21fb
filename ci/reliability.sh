#!/usr/bin/env bash
# Kill-at-a-random-moment test of vdi-server / vdi-client (ref/tools).
#
# Each trial runs one backup or restore between the two tools, then kills one side (the
# victim) at a seeded moment of the session: before connect, during configuration,
# mid-transfer or at the end; with SIGKILL, SIGTERM (SIGKILL 0.5 s later if still alive)
# or SIGSTOP then SIGKILL 50-500 ms later (the survivor's time counts from the SIGKILL). The survivor is judged:
#   - it ends within 2 s of the kill (the time is measured and reported); a victim killed
#     before connect or during configuration may die before the two sides met, and then
#     the survivor has nobody to watch (VDI-SPEC 5.3): those trials run with --timeout
#     1500 and grant the survivor 2 s beyond it;
#   - it exits non-zero, unless the session had really completed, and then the output
#     is byte-identical to the input;
#   - no leftovers: no /dev/shm object of the set (unless the victim was the client, its
#     creator, killed before its Close: the next create reclaims it), no file beside the
#     output other than what the trial made, no process of the trial still running.
#
#   ci/reliability.sh [--short] [--trials N] [--seed S] [--build-dir PREFIX]
#                     [--builds "release asan"] [--signals "kill term stop"]
#
# --short: 24 trials (release + asan); default: 120 trials. --build-dir PREFIX builds
# PREFIXrelease and PREFIXasan (default build/reliability-; ci/test.sh passes build/). Every trial prints its seed;
# `--seed S --trials N` reruns the same trials. Ends with `N passed, N failed`; exit 1 on
# any failure.
set -u
cd "$(dirname "$0")/.."

trials=120
seed=1
prefix=build/reliability-
builds="release asan"
signals="kill term stop"
short=0
while [ $# -gt 0 ]; do
    case "$1" in
    --short) short=1; trials=24 ;;
    --trials) trials="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    --build-dir) prefix="$2"; shift ;;
    --builds) builds="$2"; shift ;;
    --signals) signals="$2"; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "reliability: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$trials$seed" in *[!0-9]*) echo "reliability: --trials and --seed take numbers" >&2; exit 2 ;; esac

bindirs=""
for b in $builds; do
    d="$prefix$b"
    if [ ! -f "$d/build.ninja" ] && ! cmake --preset "$b" -B "$d" >"/tmp/reliability-configure-$b.log" 2>&1; then
        tail -n 20 "/tmp/reliability-configure-$b.log"; echo "0 passed, 1 failed"; exit 1
    fi
    # ninja does nothing when the tools are up to date
    if ! cmake --build "$d" -j 2 --target vdi-server vdi-client >"/tmp/reliability-build-$b.log" 2>&1; then
        grep -E 'error' "/tmp/reliability-build-$b.log" | head -n 20; echo "0 passed, 1 failed"; exit 1
    fi
    bindirs="$bindirs $b=$PWD/$d/ref/tools"
done

exec python3 - "$trials" "$seed" "$short" "$signals" $bindirs <<'PY'
import os, random, signal, subprocess, sys, time, tempfile, shutil, statistics

trials, seed, short = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
sigs = sys.argv[4].split()
builds = [a.split("=", 1) for a in sys.argv[5:]]
LIMIT = 2.0
SIZE = 96 << 20 if not short else 48 << 20
ASAN = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0"}

def run_pair(bdir, op, setname, wd, timeout_ms=30000):
    inp, media, out = os.path.join(wd, "input"), os.path.join(wd, "media.bak"), os.path.join(wd, "output")
    common = ["--max-transfer", "64K", "--buffers", "1", "--timeout", str(timeout_ms)]
    if op == "backup":
        cli = [os.path.join(bdir, "vdi-client"), "backup", setname, media] + common
        srv = [os.path.join(bdir, "vdi-server"), "backup", setname, inp] + common
        target = media
    else:
        cli = [os.path.join(bdir, "vdi-client"), "restore", setname, media] + common
        srv = [os.path.join(bdir, "vdi-server"), "restore", setname, out] + common
        target = out
    return cli, srv, target

def start(cmd, wd):
    err = open(os.path.join(wd, "..", os.path.basename(wd) + "." + os.path.basename(cmd[0]) + ".err"), "w+b")
    p = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, **ASAN))
    p.errfile = err
    return p

def session(bdir, op, setname, wd):
    cli, srv, _ = run_pair(bdir, op, setname, wd)
    t0 = time.monotonic()
    c = start(cli, wd); s = start(srv, wd)
    c.wait(60); s.wait(60)
    return time.monotonic() - t0, c.returncode, s.returncode

base = tempfile.mkdtemp(prefix="vdi-reliability-")
data = random.Random(seed).randbytes(SIZE)
# calibration: one clean session per build and operation gives the length of a session
dur = {}
for bname, bdir in builds:
    wd = os.path.join(base, "cal-" + bname); os.mkdir(wd)
    open(os.path.join(wd, "input"), "wb").write(data)
    for op in ("backup", "restore"):
        d, rc, rs = session(bdir, op, "relcal%d%s" % (os.getpid(), bname), wd)
        d2, rc2, rs2 = session(bdir, op, "relcal%d%sb" % (os.getpid(), bname), wd)
        d, rc, rs = min(d, d2), rc or rc2, rs or rs2
        if rc or rs:
            print("calibration %s %s failed: client %d server %d" % (bname, op, rc, rs)); print("0 passed, 1 failed"); sys.exit(1)
        dur[(bname, op)] = d
    if open(os.path.join(wd, "media.bak"), "rb").read() != data or open(os.path.join(wd, "output"), "rb").read() != data:
        print("calibration %s: output differs from input" % bname); print("0 passed, 1 failed"); sys.exit(1)
    print("calibration %s: backup %.3f s, restore %.3f s (%d MiB)" % (bname, dur[(bname, "backup")], dur[(bname, "restore")], SIZE >> 20))
    shutil.rmtree(wd)

phases = ("before-connect", "configuration", "mid-transfer", "end")
results = []
for i in range(trials):
    tseed = seed * 1000003 + i
    r = random.Random(tseed)
    bname, bdir = builds[i % len(builds)]
    op = r.choice(("backup", "restore"))
    victim = r.choice(("client", "server"))
    sig = sigs[(i // len(builds)) % len(sigs)]
    phase = phases[r.randrange(4)]
    D = dur[(bname, op)]
    delay = {"before-connect": r.uniform(0, 0.003), "configuration": r.uniform(0.003, 0.015),
             "mid-transfer": r.uniform(0.2 * D, 0.8 * D), "end": r.uniform(0.9 * D, 1.05 * D)}[phase]
    setname = "rel%dt%d" % (os.getpid(), i)
    wd = os.path.join(base, "t%d" % i); os.mkdir(wd)
    open(os.path.join(wd, "input"), "wb").write(data)
    if op == "restore":
        open(os.path.join(wd, "media.bak"), "wb").write(data)
    # A victim killed before the two sides met leaves a survivor with nobody to watch: it
    # can only give up when its own --timeout passes (VDI-SPEC 5.3: nothing is watched
    # before the server's open). The early phases run with a short timeout and grant it.
    early = phase in ("before-connect", "configuration")
    timeout_ms = 1500 if early else 30000
    bound = LIMIT + (timeout_ms / 1000.0 if early else 0)
    cli, srv, target = run_pair(bdir, op, setname, wd, timeout_ms)
    order = r.choice(("client-first", "server-first"))
    if order == "client-first":
        c = start(cli, wd); s = start(srv, wd)
    else:
        s = start(srv, wd); c = start(cli, wd)
    t0 = time.monotonic()
    vp, sp = (c, s) if victim == "client" else (s, c)
    while time.monotonic() - t0 < delay:
        time.sleep(0.0005)
    victim_done = vp.poll() is not None
    tk = time.monotonic()
    if not victim_done:
        if sig == "stop":
            # stopped for a seeded while (a stopped peer is alive: nothing is owed yet), then killed
            vp.send_signal(signal.SIGSTOP)
            time.sleep(r.uniform(0.05, 0.5))
            tk = time.monotonic()
            vp.send_signal(signal.SIGKILL)
        else:
            vp.send_signal({"kill": signal.SIGKILL, "term": signal.SIGTERM}[sig])
    try:
        sp.wait(4)
        st = time.monotonic() - tk
    except subprocess.TimeoutExpired:
        st = None
    # the victim: SIGKILL whatever is left of it (stopped, or ignoring SIGTERM)
    if vp.poll() is None:
        if sig == "term":
            try: vp.wait(0.5)
            except subprocess.TimeoutExpired: pass
        if vp.poll() is None:
            vp.kill()
    vp.wait()
    if st is None:
        sp.kill(); sp.wait()
    problems = []
    rc = sp.returncode
    if st is None:
        problems.append("survivor still running 4 s after the kill")
    elif st > bound and not victim_done:
        problems.append("survivor took %.2f s" % st)
    complete = victim_done and vp.returncode == 0
    if rc == 0:
        got = open(target, "rb").read() if os.path.exists(target) else b""
        # a survivor that exits 0 claims the session completed: the output must be whole
        if got != data:
            # a restore's client finishes before its server has written the output: its 0
            # does not vouch for the server's file
            if not (op == "restore" and victim == "client" and False) and not (op == "restore" and victim == "server" and not complete):
                problems.append("exit 0 with output differing from input")
    elif complete and rc != 0:
        pass  # the victim finished first; the survivor failing afterwards is still a failure code
    if rc is not None and rc < 0:
        problems.append("survivor died of signal %d" % -rc)
    sp.errfile.seek(0)
    err = sp.errfile.read().decode(errors="replace")
    if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
        problems.append("sanitizer report: " + err.strip().splitlines()[0][:120])
    shm = [n for n in os.listdir("/dev/shm") if setname in n]
    # The set's object is its creator's, the client's, to unlink at Close: a client killed
    # before that cannot, and the next create of the name reclaims it (VDI-SPEC 8.4). Only
    # a survivor's leftover, or a finished client's, is a failure.
    if shm and not (victim == "client" and not victim_done):
        problems.append("left in /dev/shm: " + " ".join(shm))
    extra = sorted(set(os.listdir(wd)) - {"input", "media.bak", "output"})
    if extra:
        problems.append("left beside the output: " + " ".join(extra))
    procs = subprocess.run(["pgrep", "-f", setname], capture_output=True, text=True).stdout.split()
    if procs:
        problems.append("processes left: " + " ".join(procs))
        for p in procs:
            try: os.kill(int(p), signal.SIGKILL)
            except OSError: pass
    for n in shm:
        try: os.unlink("/dev/shm/" + n)
        except OSError: pass
    shutil.rmtree(wd, ignore_errors=True)
    ok = not problems
    results.append(dict(build=bname, op=op, victim=victim, sig=sig, phase=phase, t=st, rc=rc, ok=ok, done=victim_done))
    print("trial %3d seed %d: %-7s %-7s kill %-6s %-4s %-14s at %6.3f s: survivor %s %s, exit %s: %s" % (
        i, tseed, bname, op, victim, sig, phase, delay, "client" if victim == "server" else "server",
        "%.3f s" % st if st is not None else "-", rc, "ok" if ok else "FAILED: " + "; ".join(problems)),
        flush=True)

shutil.rmtree(base, ignore_errors=True)
print()
print("%-8s %-9s %-6s %6s %8s %8s %8s  %s" % ("build", "survivor", "signal", "trials", "median", "p90", "max", "distribution (s): <0.1 <0.25 <0.5 <1 <2 >=2"))
for bname, _ in builds:
    for surv in ("client", "server"):
        for sig in sigs:
            rs = [x for x in results if x["build"] == bname and x["victim"] != surv and x["sig"] == sig and x["t"] is not None and not x["done"]]
            if not rs: continue
            ts = sorted(x["t"] for x in rs)
            hist = [0] * 6
            for t in ts:
                hist[next((k for k, b in enumerate((0.1, 0.25, 0.5, 1, 2)) if t < b), 5)] += 1
            print("%-8s %-9s %-6s %6d %8.3f %8.3f %8.3f  %s" % (bname, surv, sig, len(ts), statistics.median(ts),
                  ts[min(len(ts) - 1, int(0.9 * len(ts)))], ts[-1], " ".join("%d" % h for h in hist)))
allt = [x["t"] for x in results if x["t"] is not None and not x["done"]]
if allt:
    print("survivor time over all kills: max %.3f s, median %.3f s (%d kills, %d sessions had ended before the kill)" % (
        max(allt), statistics.median(allt), len(allt), sum(1 for x in results if x["done"])))
npass = sum(1 for x in results if x["ok"])
print("%d passed, %d failed" % (npass, len(results) - npass))
sys.exit(0 if npass == len(results) else 1)
PY
