#!/usr/bin/python3
# mpi4py.futures peer benchmark for the ipcluster bench harness.
#
# Run (from the repository root) -- this exact command line:
#   mpiexec --allow-run-as-root --oversubscribe -n 3 /usr/bin/python3 -m mpi4py.futures bench/peers/mpi4py_bench.py --size full
# Options: --workloads rtt,lb,map  --size smoke|full  --runs N
#
# mpiexec starts 3 ranks; `-m mpi4py.futures` runs this script on rank 0 and
# makes ranks 1 and 2 the shared pool of 2 workers behind MPIPoolExecutor.
# (--oversubscribe: 3 ranks on 2 cores; --allow-run-as-root: we run as root.)
# The pool is shut down before exit (also on error, Ctrl-C and SIGTERM); mpiexec
# reaps the ranks.
# Also works, ~5% slower here: `mpiexec --allow-run-as-root --oversubscribe -n 1
# /usr/bin/python3 bench/peers/mpi4py_bench.py`, where MPIPoolExecutor(max_workers=2)
# spawns the workers with MPI_Comm_spawn. Run without mpiexec, or with another -n,
# the script reports an error per workload (the pool must have exactly 2 workers).
#
# stdout: one JSON object per line, {"peer", "workload", "metric", "value", "run", "n"},
# or {"peer", "workload", "error"} for a workload that failed. Logs go to stderr.
import gc
import math
import os
import signal
import sys
import threading
import time

PEER = "mpi4py.futures"
ALL = ["rtt", "lb", "map"]
WORKERS = 2

SIZES = {
    "smoke": dict(rtt=20, lb=100, map=10_000, runs=1),
    "full": dict(rtt=2000, lb=20_000, map=1_000_000, runs=5),
}


# ---- common helpers: bench/peers/peerkit.py ---------------------------------
# (Not its process guard: mpiexec owns the ranks here; see below.)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerkit  # noqa: E402
from peerkit import emit, emit_error, log, median, parse_args, percentile, warm_n, warmups  # noqa: E402,F401

peerkit.PEER = PEER
peerkit.SIZES = SIZES


def install_signal_handlers():
    # Exit at once: mpiexec then tears down the worker ranks. (Unwinding through
    # the executor's shutdown from an arbitrary point could hang.)
    def h(signum, frame):
        log(f"signal {signum}: exiting")
        sys.stdout.flush()
        os._exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, h)


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


# ---- task functions (workers import this file as __worker__) ---------------
def noop():
    pass


def sq(x):
    return x * x


# ---- workloads ------------------------------------------------------------
def w_rtt(ex, n):
    # MPIPoolExecutor cannot pin a task to a worker; with one call in flight
    # at a time, the call goes to whichever of the 2 idle workers is next.
    lat = []
    pc = time.perf_counter
    for _ in range(n):
        t0 = pc()
        ex.submit(noop).result()
        lat.append((pc() - t0) * 1e6)
    return {"p50_us": median(lat), "p99_us": percentile(lat, 99)}


def w_lb(ex, n):
    t0 = time.perf_counter()
    futs = [ex.submit(noop) for _ in range(n)]
    for f in futs:
        f.result()
    return {"tasks_per_s": n / (time.perf_counter() - t0)}


def w_map(ex, n):
    items = list(range(n))
    chunk = math.ceil(n / (4 * WORKERS))
    t0 = time.perf_counter()
    out = list(ex.map(sq, items, chunksize=chunk))
    d = time.perf_counter() - t0
    if len(out) != n or out[-1] != (n - 1) ** 2:
        raise RuntimeError("map returned wrong results")
    return {"items_per_s": n / d}


def main():
    args = parse_args(ALL)
    install_signal_handlers()
    sz = SIZES[args.size]
    runs = args.runs if args.runs is not None else sz["runs"]
    try:
        import mpi4py
        from mpi4py import MPI
        from mpi4py.futures import MPIPoolExecutor
        log("mpi4py", mpi4py.__version__, "|", MPI.Get_library_version().splitlines()[0])
    except Exception as e:
        for w in args.workloads:
            emit_error(w, f"import mpi4py: {e}")
        return 1

    ok = False
    ex = None
    pending = list(args.workloads)
    try:
        from mpi4py.futures import _lib
        world = MPI.COMM_WORLD.Get_size()
        shared = _lib.SharedPool is not None  # launched with -m mpi4py.futures
        under_mpiexec = "OMPI_COMM_WORLD_SIZE" in os.environ
        if not ((shared and world == WORKERS + 1) or (not shared and world == 1 and under_mpiexec)):
            raise RuntimeError(
                f"launched wrong (world size {world}, -m mpi4py.futures: {shared}, "
                f"under mpiexec: {under_mpiexec}); use: mpiexec --allow-run-as-root "
                f"--oversubscribe -n {WORKERS + 1} /usr/bin/python3 -m mpi4py.futures {sys.argv[0]}")
        t0 = time.perf_counter()
        ex = MPIPoolExecutor(max_workers=WORKERS)
        # a failed spawn leaves the pool waiting forever: give up after 60 s
        booted = threading.Event()

        def watchdog():
            if not booted.wait(60):
                for w in args.workloads:
                    emit_error(w, "pool: workers did not start within 60 s")
                os._exit(1)
        threading.Thread(target=watchdog, daemon=True).start()
        got = ex._max_workers  # boots the pool (spawn) and waits for it
        booted.set()
        if got != WORKERS:
            raise RuntimeError(f"pool has {got} workers, want {WORKERS} "
                               "(launch with mpiexec -n 1, or -n 3 -m mpi4py.futures)")
        ex.submit(noop).result()
        log(f"pool of {got} workers up in {time.perf_counter() - t0:.2f} s")
        table = {
            "rtt": (lambda k: w_rtt(ex, k), sz["rtt"]),
            "lb": (lambda k: w_lb(ex, k), sz["lb"]),
            "map": (lambda k: w_map(ex, k), sz["map"]),
        }
        for w in args.workloads:
            fn, n = table[w]
            log(f"{w} (n={n}) ...")
            t0 = time.perf_counter()
            ok |= run_measured(w, fn, n, runs, None, warm_n(w, n, args.size))
            log(f"{w} done in {time.perf_counter() - t0:.1f} s")
            pending.remove(w)
    except Exception as e:
        log(f"pool failed: {e!r}")
        for w in pending:
            emit_error(w, f"pool: {type(e).__name__}: {e}")
    finally:
        if ex is not None:
            try:
                ex.shutdown(wait=True, cancel_futures=True)
            except Exception as e:  # noqa
                log("shutdown:", e)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
