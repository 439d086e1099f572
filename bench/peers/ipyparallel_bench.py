#!/usr/bin/python3
# ipyparallel peer benchmark for the ipcluster bench harness.
#
# Run (from the repository root):
#   /usr/bin/python3 bench/peers/ipyparallel_bench.py --size full
# Options: --workloads rtt,lb,map,push,pull,startup  --size smoke|full  --runs N
# (startup: min(N, 3) runs in full, 1 in smoke)
#
# stdout: one JSON object per line, {"peer", "workload", "metric", "value", "run", "n"},
# or {"peer", "workload", "error"} for a workload that failed. Logs go to stderr.
# Every cluster started here runs in a private temporary profile directory and is
# stopped before exit (also on error, Ctrl-C and SIGTERM).
import argparse
import gc
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

PEER = "ipyparallel"
ALL = ["rtt", "lb", "map", "push", "pull", "startup"]
ENGINES = 2  # rtt, lb, map, push, pull
STARTUP_ENGINES = 4

SIZES = {
    "smoke": dict(rtt=20, lb=100, map=10_000, bytes=2**20, startup_runs=1, runs=1),
    # rtt: 2000 calls at ~3 ms each is ~6 s a run; the whole full run takes ~2 min.
    "full": dict(rtt=2000, lb=2000, map=1_000_000, bytes=100 * 2**20, startup_runs=3, runs=5),
}


# ---- common helpers: bench/peers/peerkit.py ---------------------------------
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerkit  # noqa: E402
from peerkit import *  # noqa: E402,F401,F403

peerkit.PEER = PEER
peerkit.SIZES = SIZES



# ---- workload functions (shipped to engines) -------------------------------
def noop():
    pass


def sq(x):
    return x * x


def quiet():
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    for name in ("ipyparallel", "traitlets", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)


def new_cluster(n, profile_root):
    import ipyparallel as ipp
    prof = tempfile.mkdtemp(prefix="profile_", dir=profile_root)
    return ipp.Cluster(n=n, profile_dir=prof, log_level=logging.ERROR,
                       load_profile=False, shutdown_atexit=True)


def stop_cluster(cluster, rc):
    """Stop controller and engines, and wait until every process the cluster
    started (engines, their nannies, controller) has exited: ipyparallel's own
    stop returns before the engine nannies are gone."""
    import psutil
    procs = our_children()
    try:
        if rc is not None:
            rc.close()
    except Exception as e:  # noqa
        log("client close:", e)
    wd = stop_watchdog(60, "cluster stop")
    try:
        cluster.stop_cluster_sync()
    except Exception as e:  # noqa
        log("stop_cluster:", e)
    finally:
        wd.cancel()
    # give them a moment to exit on their own, then TERM, then KILL
    _, alive = psutil.wait_procs(procs, timeout=1)
    for sig in ("terminate", "kill"):
        if not alive:
            break
        for p in alive:
            try:
                getattr(p, sig)()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(alive, timeout=5)
    if alive:
        log(f"processes still alive after stop: {[p.pid for p in alive]}")


# ---- workloads ------------------------------------------------------------
def w_rtt(rc, n):
    view = rc[rc.ids[0]]  # one fixed engine
    lat = []
    pc = time.perf_counter
    for _ in range(n):
        t0 = pc()
        view.apply_sync(noop)
        lat.append((pc() - t0) * 1e6)
    return {"p50_us": median(lat), "p99_us": percentile(lat, 99)}


def w_lb(rc, n):
    lview = rc.load_balanced_view()
    t0 = time.perf_counter()
    ars = [lview.apply_async(noop) for _ in range(n)]
    for ar in ars:
        ar.get()
    return {"tasks_per_s": n / (time.perf_counter() - t0)}


def w_map(rc, n):
    lview = rc.load_balanced_view()
    items = list(range(n))  # a real list of ints (a range would ship as tiny range slices)
    chunk = math.ceil(n / (4 * len(rc.ids)))
    t0 = time.perf_counter()
    out = lview.map(sq, items, chunksize=chunk, block=True)
    d = time.perf_counter() - t0
    if len(out) != n or out[-1] != (n - 1) ** 2:
        raise RuntimeError("map returned wrong results")
    return {"items_per_s": n / d}


def w_push(rc, nbytes, state):
    import numpy as np
    view = rc[rc.ids[0]]
    a = np.random.rand(nbytes // 8)
    t0 = time.perf_counter()
    view.push({"x": a}, block=True)
    d = time.perf_counter() - t0
    state["a"] = a
    return {"push_gbps": a.nbytes / d / 1e9}


def w_pull(rc, nbytes, state):
    import numpy as np
    view = rc[rc.ids[0]]
    a = state.get("a")
    if a is None or a.nbytes != nbytes // 8 * 8:
        a = np.random.rand(nbytes // 8)
        view.push({"x": a}, block=True)
        state["a"] = a
    t0 = time.perf_counter()
    b = view.pull("x", block=True)
    d = time.perf_counter() - t0
    if b.shape != a.shape or b[-1] != a[-1]:
        raise RuntimeError("pulled data differs")
    return {"pull_gbps": a.nbytes / d / 1e9}


def startup_once(profile_root):
    rc = None
    t0 = time.perf_counter()
    cluster = new_cluster(STARTUP_ENGINES, profile_root)
    try:
        rc = cluster.start_and_connect_sync()  # returns once 4 engines registered
        d = time.perf_counter() - t0
        if len(rc.ids) != STARTUP_ENGINES:
            raise RuntimeError(f"{len(rc.ids)} engines registered, want {STARTUP_ENGINES}")
        rc[:].apply_sync(noop)  # check they are usable (not timed)
        return d
    finally:
        stop_cluster(cluster, rc)


def run_measured(name, fn, n, runs, prep=None, warm_n=None):
    """fn(n) runs the workload once at size n and returns {metric: value}.
    Unmeasured warm-up runs (warmups(name)) at size warm_n (default n), then `runs`
    measured runs at size n; emits one line per metric and run.
    prep() runs before each run, untimed (bookkeeping cleanup)."""
    def one(k):
        if prep is not None:
            prep()
        gc.collect()
        return fn(k)
    try:
        for _ in range(warmups(name)):
            one(warm_n or n)
        for r in range(runs):
            for metric, v in one(n).items():
                emit(name, metric, v, r, n)
        return True
    except Exception as e:
        log(f"{name} failed: {e!r}")
        emit_error(name, f"{type(e).__name__}: {e}")
        return False


def main():
    args = parse_args(ALL)
    install_signal_handlers()
    become_subreaper()
    profile_root = tempfile.mkdtemp(prefix="ippbench-")  # private profiles, removed at exit
    CLEANUP_DIRS.append(profile_root)
    start_guard([profile_root])
    quiet()
    sz = SIZES[args.size]
    runs = args.runs if args.runs is not None else sz["runs"]
    ok = False
    try:
        try:
            import ipyparallel as ipp
            log("ipyparallel", ipp.__version__)
        except Exception as e:
            for w in args.workloads:
                emit_error(w, f"import ipyparallel: {e}")
            return 1

        main_wl = [w for w in args.workloads if w != "startup"]
        pending = list(main_wl)
        if main_wl:
            cluster = new_cluster(ENGINES, profile_root)
            rc = None
            try:
                t0 = time.perf_counter()
                rc = cluster.start_and_connect_sync()
                log(f"cluster of {len(rc.ids)} engines up in {time.perf_counter() - t0:.1f} s")
                state = {}

                def prep():
                    # drop the client's and hub's record of finished tasks, which
                    # otherwise grows run after run and inflates p99 (GC pauses)
                    rc.purge_everything()

                nbytes = sz["bytes"] // 8 * 8
                table = {
                    "rtt": (lambda k: w_rtt(rc, k), sz["rtt"]),
                    "lb": (lambda k: w_lb(rc, k), sz["lb"]),
                    "map": (lambda k: w_map(rc, k), sz["map"]),
                    "push": (lambda k: w_push(rc, k, state), nbytes),
                    "pull": (lambda k: w_pull(rc, k, state), nbytes),
                }
                for w in main_wl:
                    fn, n = table[w]
                    log(f"{w} (n={n}) ...")
                    t0 = time.perf_counter()
                    ok |= run_measured(w, fn, n, runs, prep, warm_n(w, n, args.size))
                    log(f"{w} done in {time.perf_counter() - t0:.1f} s")
                    pending.remove(w)
                state.clear()
            except Exception as e:
                log(f"cluster failed: {e!r}")
                for w in pending:
                    emit_error(w, f"cluster: {type(e).__name__}: {e}")
            finally:
                stop_cluster(cluster, rc)

        if "startup" in args.workloads:
            # 2-engine cluster (if any) is stopped by now, so nothing competes for the CPUs.
            # slow (~9 s a run with the stop): at most 3 runs in full, 1 in smoke,
            # even when --runs asks for more
            sruns = min(runs, sz["startup_runs"])
            log("startup ...")
            try:
                if not main_wl:
                    # warm-up (imports, disk cache); when the 2-engine cluster was
                    # started above, that start already was the warm-up
                    startup_once(profile_root)
                for r in range(sruns):
                    emit("startup", "seconds", startup_once(profile_root), r, STARTUP_ENGINES)
                ok = True
            except Exception as e:
                log(f"startup failed: {e!r}")
                emit_error("startup", f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(profile_root, ignore_errors=True)
        stop_guard()
    return 0 if (ok or EMITTED[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
