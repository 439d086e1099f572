#!/usr/bin/python3
# dask.distributed peer benchmark for the ipcluster bench harness.
#
# Run (from the repository root):
#   /usr/bin/python3 bench/peers/dask_bench.py --size full
# Options: --workloads rtt,lb,map,push,pull  --size smoke|full  --runs N
#
# stdout: one JSON object per line, {"peer", "workload", "metric", "value", "run", "n"},
# or {"peer", "workload", "error"} for a workload that failed. Logs go to stderr.
# The LocalCluster (scheduler in this process, 2 nanny+worker process pairs,
# threads_per_worker=1) is closed before exit, also on error, Ctrl-C and SIGTERM.
import argparse
import gc
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from itertools import chain

PEER = "dask"
ALL = ["rtt", "lb", "map", "push", "pull"]
WORKERS = 2

SIZES = {
    "smoke": dict(rtt=20, lb=100, map=10_000, bytes=2**20, runs=1),
    # rtt: 1000 calls, not 2000 (each takes ~10.7 ms in dask; 2000 x 6 runs took 130 s);
    # map: 200,000 items, not 1,000,000 (dask maps ~58k items/s here: 17 s a run).
    "full": dict(rtt=1000, lb=2000, map=200_000, bytes=100 * 2**20, runs=5),
}


# ---- common helpers: bench/peers/peerkit.py ---------------------------------
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerkit  # noqa: E402
from peerkit import *  # noqa: E402,F401,F403

peerkit.PEER = PEER
peerkit.SIZES = SIZES



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


# ---- task functions (shipped to workers by value, via cloudpickle) ---------
def noop():
    pass


def sq(x):
    return x * x


def sq_chunk(chunk):
    return [sq(x) for x in chunk]


def quiet():
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    for name in ("distributed", "dask", "tornado", "asyncio", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---- workloads ------------------------------------------------------------
def w_rtt(client, worker, n):
    lat = []
    pc = time.perf_counter
    for _ in range(n):
        t0 = pc()
        # pure=False: a fresh key each call (pure=True would reuse the first result)
        client.submit(noop, pure=False, workers=[worker]).result()
        lat.append((pc() - t0) * 1e6)
    return {"p50_us": median(lat), "p99_us": percentile(lat, 99)}


def w_lb(client, n):
    t0 = time.perf_counter()
    futs = [client.submit(noop, pure=False) for _ in range(n)]
    client.gather(futs)
    d = time.perf_counter() - t0
    del futs
    return {"tasks_per_s": n / d}


def w_map(client, n):
    items = list(range(n))
    k = 4 * WORKERS  # 4 chunks per worker
    t0 = time.perf_counter()
    c = -(-n // k)
    chunks = [items[i:i + c] for i in range(0, n, c)]
    futs = client.map(sq_chunk, chunks, pure=False)
    out = list(chain.from_iterable(client.gather(futs)))
    d = time.perf_counter() - t0
    del futs
    if len(out) != n or out[-1] != (n - 1) ** 2:
        raise RuntimeError("map returned wrong results")
    return {"items_per_s": n / d}


def w_push(client, worker, nbytes, state):
    import numpy as np
    a = np.random.rand(nbytes // 8)
    state.pop("fut", None)
    t0 = time.perf_counter()
    # hash=False: random key, no hashing of 100 MB and no dedup against an earlier push
    fut = client.scatter(a, workers=[worker], hash=False)
    d = time.perf_counter() - t0
    state["fut"], state["a"] = fut, a
    return {"push_gbps": a.nbytes / d / 1e9}


def w_pull(client, worker, nbytes, state):
    import numpy as np
    fut, a = state.get("fut"), state.get("a")
    if fut is None or a.nbytes != nbytes // 8 * 8:
        a = np.random.rand(nbytes // 8)
        fut = client.scatter(a, workers=[worker], hash=False)
        state["fut"], state["a"] = fut, a
    # the client keeps no copy of scattered data: gather fetches it from the worker
    holders = client.who_has(fut).get(fut.key, ())
    if list(holders) != [worker]:
        raise RuntimeError(f"data is on {holders}, expected only on {worker}")
    t0 = time.perf_counter()
    b = client.gather(fut)
    d = time.perf_counter() - t0
    if b is a or b.shape != a.shape or b[-1] != a[-1]:
        raise RuntimeError("pulled data differs (or was not moved)")
    return {"pull_gbps": a.nbytes / d / 1e9}


def wait_children(procs):
    """Wait for the nanny and worker processes to exit (TERM, then KILL, any
    that linger). multiprocessing's resource tracker is left alone: it exits
    by itself when this process does."""
    import psutil

    def helper(p):
        try:
            return "multiprocessing.resource_tracker" in " ".join(p.cmdline())
        except psutil.Error:
            return True
    procs = [p for p in procs if not helper(p)]
    _, alive = psutil.wait_procs(procs, timeout=3)
    for sig in ("terminate", "kill"):
        if not alive:
            break
        for p in alive:
            try:
                log(f"{sig} leftover pid {p.pid}: {' '.join(p.cmdline())}")
            except psutil.Error:
                pass
            try:
                getattr(p, sig)()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(alive, timeout=5)


def main():
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    args = parse_args(ALL)
    install_signal_handlers()
    become_subreaper()
    workdir = tempfile.mkdtemp(prefix="daskbench-")  # workers' local_directory, removed at exit
    CLEANUP_DIRS.append(workdir)
    start_guard([workdir])
    quiet()
    sz = SIZES[args.size]
    runs = args.runs if args.runs is not None else sz["runs"]
    try:
        import dask
        import distributed
        from distributed import Client, LocalCluster
        quiet()  # again: importing distributed installs its own log levels
        log("dask", dask.__version__, "distributed", distributed.__version__)
    except Exception as e:
        for w in args.workloads:
            emit_error(w, f"import distributed: {e}")
        return 1
    import psutil

    ok = False
    cluster = client = None
    procs = []
    pending = list(args.workloads)
    try:
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                               host="127.0.0.1", silence_logs=logging.ERROR,
                               local_directory=workdir,
                               # no bokeh dashboard; its HTTP server on a free port
                               dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
        client.wait_for_workers(WORKERS, timeout=60)
        procs = our_children()
        workers = sorted(client.scheduler_info()["workers"])
        worker = workers[0]
        log(f"cluster of {len(workers)} workers up in {time.perf_counter() - t0:.1f} s")
        state = {}
        nbytes = sz["bytes"] // 8 * 8
        table = {
            "rtt": (lambda k: w_rtt(client, worker, k), sz["rtt"]),
            "lb": (lambda k: w_lb(client, k), sz["lb"]),
            "map": (lambda k: w_map(client, k), sz["map"]),
            "push": (lambda k: w_push(client, worker, k, state), nbytes),
            "pull": (lambda k: w_pull(client, worker, k, state), nbytes),
        }
        for w in args.workloads:
            fn, n = table[w]
            log(f"{w} (n={n}) ...")
            t0 = time.perf_counter()
            ok |= run_measured(w, fn, n, runs, None, warm_n(w, n, args.size))
            log(f"{w} done in {time.perf_counter() - t0:.1f} s")
            pending.remove(w)
        state.clear()
    except Exception as e:
        log(f"cluster failed: {e!r}")
        for w in pending:
            emit_error(w, f"cluster: {type(e).__name__}: {e}")
    finally:
        wd = stop_watchdog(60, "cluster close")
        for obj in (client, cluster):
            try:
                if obj is not None:
                    obj.close()
            except Exception as e:  # noqa
                log("close:", e)
        procs = list({p.pid: p for p in procs + our_children()}.values())
        wait_children(procs)
        wd.cancel()
        shutil.rmtree(workdir, ignore_errors=True)
        stop_guard()
    return 0 if (ok or EMITTED[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
