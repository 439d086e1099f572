"""Helpers shared by the peer benchmark scripts: output, statistics,
arguments, and the guard that cleans up every process a peer starts.
Each script sets peerkit.PEER to its name, and peerkit.SIZES to its
workload sizes, before calling them."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

PEER = "?"
# SIZES, the workload sizes by size name, is set by the script (not
# defined here: the scripts' "from peerkit import *" would overwrite
# theirs).


def log(*a):
    print(f"[{PEER}]", *a, file=sys.stderr, flush=True)


def emit(workload, metric, value, run, n):
    EMITTED[0] = True
    print(json.dumps({"peer": PEER, "workload": workload, "metric": metric,
                      "value": round(float(value), 3), "run": run, "n": int(n)}), flush=True)


def emit_error(workload, msg):
    print(json.dumps({"peer": PEER, "workload": workload, "error": str(msg)[:500]}), flush=True)


def median(xs):
    s = sorted(xs)
    if not s:
        return 0.0
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def percentile(xs, p):
    # same definition as bench/relay.go: s[int(p/100*(len-1))]
    s = sorted(xs)
    return s[int(p / 100 * (len(s) - 1))] if s else 0.0


def parse_args(all_workloads):
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default=",".join(all_workloads))
    ap.add_argument("--size", choices=["smoke", "full"], default="full")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    wl = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in wl:
        if w not in all_workloads:
            ap.error(f"unknown workload {w!r}; supported: {','.join(all_workloads)}")
    args.workloads = wl
    return args


def warmups(workload):
    """Unmeasured runs before the measured ones: three for push and pull,
    whose first transfers grow fresh processes' memory (ipcluster's bench
    and its one-hop limit warm up as many times), one for the others."""
    return 3 if workload in ("push", "pull") else 1


def warm_n(workload, n, size):
    """Warm-up size: a tenth of n for the count workloads (at least the smoke
    size), the full size for push/pull (allocation and page-fault costs)."""
    if workload in ("push", "pull") or size == "smoke":
        return n
    return max(n // 10, SIZES["smoke"][workload])


CLEANUP_DIRS = []  # removed on exit, also by the signal handler
EMITTED = [False]  # any measurement printed (decides the exit status)


# A separate watcher process that outlives this one if it is SIGKILLed (e.g. by
# a harness timeout): it records this process's descendants every 0.2 s and,
# when its stdin pipe reaches EOF without the "q" sent at a normal exit, kills
# whatever of them is still running (the peer's controller, engines, workers
# run in their own sessions and would otherwise survive us).
GUARD_CODE = r"""
import os, select, sys, psutil
parent, me, seen = int(sys.argv[1]), os.getpid(), {}
while True:
    r, _, _ = select.select([0], [], [], 0.2)
    if r:
        b = os.read(0, 1)
        if b == b"q":
            sys.exit(0)
        if not b:
            break
    try:
        for p in psutil.Process(parent).children(recursive=True):
            if p.pid != me and p.pid not in seen:
                seen[p.pid] = p
    except psutil.Error:
        break
frozen = {}
todo = [p for p in seen.values() if p.is_running()]
while todo:
    p = todo.pop()
    if p.pid in frozen:
        continue
    try:
        p.suspend()
        frozen[p.pid] = p
        todo.extend(p.children(recursive=True))
    except psutil.Error:
        pass
for p in frozen.values():
    try:
        p.kill()
    except psutil.Error:
        pass
psutil.wait_procs(list(frozen.values()), timeout=5)
if frozen:
    sys.stderr.write("[guard] killed %d leftover processes\n" % len(frozen))
import shutil
for d in sys.argv[2:]:
    shutil.rmtree(d, ignore_errors=True)
"""
GUARD = []  # the watcher's Popen


def start_guard(dirs=()):
    """dirs: directories the guard removes after killing the leftovers."""
    import subprocess
    try:
        GUARD.append(subprocess.Popen([sys.executable, "-c", GUARD_CODE, str(os.getpid()), *dirs],
                                      stdin=subprocess.PIPE, start_new_session=True))
    except Exception as e:  # noqa
        log("could not start the leftover-process guard:", e)


def stop_guard():
    """Normal exit: everything is cleaned up; tell the watcher to quit."""
    for g in GUARD:
        try:
            g.stdin.write(b"q")
            g.stdin.close()
            g.wait(5)
        except Exception:  # noqa
            g.kill()


def our_children():
    """This process's descendants, the guard excepted."""
    import psutil
    skip = {g.pid for g in GUARD}
    try:
        return [p for p in psutil.Process().children(recursive=True) if p.pid not in skip]
    except psutil.Error:
        return []


def kill_tree(timeout=5):
    """Kill every process this one started, recursively. Freeze them first
    (SIGSTOP) until no new one appears, so that a process being started right
    now (e.g. an engine's nanny) cannot escape, then SIGKILL them all."""
    import psutil
    frozen = {}
    for _ in range(50):
        try:
            new = [p for p in psutil.Process().children(recursive=True) if p.pid not in frozen]
        except psutil.Error:
            break
        if not new:
            break
        for p in new:
            try:
                p.suspend()
            except psutil.Error:
                pass
            frozen[p.pid] = p
    for p in frozen.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(frozen.values()), timeout=timeout)


def hard_exit(code):
    """Kill everything we started, remove our temp dirs, exit now. Used on
    SIGTERM/SIGINT/SIGHUP and when a cluster stop hangs: unwinding through the
    peer's client code from an arbitrary point can deadlock its shutdown."""
    try:
        kill_tree()
    finally:
        for d in CLEANUP_DIRS:
            shutil.rmtree(d, ignore_errors=True)
        sys.stdout.flush()
        os._exit(code)


def become_subreaper():
    """Make this process the reaper of its orphaned descendants (Linux
    PR_SET_CHILD_SUBREAPER), so a grandchild whose parent exits first (an
    ipyparallel engine's nanny, say) stays in our tree and gets cleaned up."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except Exception as e:  # noqa
        log("prctl(PR_SET_CHILD_SUBREAPER) failed:", e)


def install_signal_handlers():
    def h(signum, frame):
        log(f"signal {signum}: stopping everything")
        hard_exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, h)


def stop_watchdog(seconds, what):
    """Timer that hard-exits if a stop takes longer than `seconds`;
    cancel() it when the stop returns."""
    def fire():
        log(f"{what} did not finish in {seconds} s: killing everything")
        hard_exit(0 if EMITTED[0] else 1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t
