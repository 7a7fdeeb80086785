#!/usr/bin/env python3
"""Instructions per request under callgrind: a measure that does not depend on the
neighbours.

Runs each system under `valgrind --tool=callgrind` (the axum echo, `modelwatch serve`,
and `modelwatch serve --no-instrumentation`), sends it warm-up requests, zeroes the
counters, sends a fixed number of requests one at a time over one keep-alive
connection, dumps the counters and stops it. The client runs outside valgrind, so
only the server's instructions are counted: every thread of it (HTTP workers, the
inference thread, the prediction log's writer, timers), user space only. Kernel
work (system calls, futex wake-ups, task switches) is not an instruction callgrind
sees; `perf record -e cpu-clock` shows that part (docs/performance.md).

The traffic is the realistic mix of bench/wrk-predict.lua, built here from a fixed
seed: ids in the store's format, 80% from a hot set, 19% from the rest of the
population, 1% unknown. The same seed gives the same bodies, so two runs of one
build give the same counts to a fraction of a percent (timers that tick during the
run add a little that depends on how long it takes).

Each function's own instructions (exclusive cost) are put into one component by
the first rule of COMPONENTS its name matches, so the components add up to the
total:

    python3 bench/callgrind.py [--requests 2000] [--warmup 500] [--binary PATH] [--echo PATH]

Needs valgrind (`apt-get install -y valgrind`).
"""

import argparse
import glob
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import free_port, log, release_binaries, seed_store, stop, stored_population  # noqa: E402

# (component, regular expression on the demangled function name or its object), first
# match wins. Order matters: a generic rule (tokio, std) comes after the specific ones.
COMPONENTS = [
    ("model", r"modelwatch_runtime::|tract_|/modelwatch-runtime/|/tract-"),
    ("batcher hand-off", r"modelwatch_server::batcher::|/modelwatch-server/src/batcher\.rs|std::sync::mpmc|"
                         r"std::sync::mpsc|/sync/mpmc/|/sync/mpsc|tokio::sync::oneshot|/sync/oneshot\.rs|"
                         r"std::thread::park|futex|thread_parking"),
    ("feature fetch and cache", r"modelwatch_server::features::|modelwatch_server::store|"
                                r"modelwatch_server::known_ids|/modelwatch-server/src/(features|store|known_ids)|"
                                r"moka::|/moka-|rusqlite::|/rusqlite-|sqlite3|libsqlite3|quick_cache|"
                                r"crossbeam_epoch|/crossbeam-epoch-|redis::|/redis-"),
    ("prediction log", r"modelwatch_log::|/modelwatch-log/|redb::|/redb-|modelwatch_server::feedback|"
                       r"/modelwatch-server/src/feedback"),
    ("metrics and drift", r"^modelwatch::|<modelwatch::|/crates/modelwatch/src"),
    ("serve's own handlers", r"modelwatch_server::|modelwatch_cli::|echo::|/modelwatch-server/|/modelwatch-cli/"),
    ("HTTP and JSON", r"hyper::|hyper_util::|axum::|axum_core::|tower::|tower_http::|http::|httparse::|"
                      r"serde_json::|serde::|serde_core::|ryu::|itoa::|bytes::|matchit::|h2::|"
                      r"/(hyper|hyper-util|axum|axum-core|tower|tower-http|http|http-body|httparse|serde_json|"
                      r"serde|serde_core|ryu|itoa|bytes|matchit)-\d|core::str::converts::from_utf8|str/validations"),
    ("async runtime", r"tokio::|mio::|futures_|parking_lot|std::sync::|std::thread::|/(tokio|mio|futures-\w+)-\d"),
    ("allocator", r"\bmalloc\b|\bfree\b|\brealloc\b|\bcalloc\b|_int_malloc|_int_free|malloc_consolidate|"
                  r"__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_|alloc::alloc|__libc_malloc|__libc_free|"
                  r"tcache|unlink_chunk|_int_realloc|cfree|/malloc/"),
    ("clock", r"clock_gettime|__vdso|Instant::now|SystemTime::now|Timespec|/time\.rs"),
    ("memory copies", r"memcpy|memmove|memset|memcmp|bcmp|strlen"),
    ("other libc and kernel entry", r"libc\.so|ld-linux|syscall|epoll|__GI_|__libc_|/sysdeps/|/nptl/"),
]
COMPILED = [(name, re.compile(rx)) for name, rx in COMPONENTS]

# A thread that runs one of these functions does that component's work and nothing
# else, so all its instructions (its allocations and copies too) go to the component.
THREADS = [
    ("prediction log", re.compile(r"modelwatch_log::Writer::run")),
    ("feature fetch and cache", re.compile(r"tokio::runtime::blocking::pool::Inner::run")),
]


def sweep_bodies(customers, terminals):
    """One request for every known customer and terminal: the cache's warm-up, so the
    measured requests see it as it is under steady load (each entity cached, misses
    only for ids the store does not hold)."""
    return [json.dumps({"customer_id": f"C{i % customers:06d}", "terminal_id": f"T{i % terminals:05d}",
                        "amount": 10 + i % 500}, separators=(",", ":")).encode()
            for i in range(max(customers, terminals))]


def realistic_bodies(n, seed, customers, terminals):
    """The realistic mix of bench/wrk-predict.lua, from Python's seeded generator."""
    rng = random.Random(seed)
    hot_c = [rng.randint(0, customers - 1) for _ in range(max(1, customers // 50))]
    hot_t = [rng.randint(0, terminals - 1) for _ in range(max(1, terminals // 50))]
    bodies = []
    for _ in range(n):
        r = rng.random()
        if r < 0.80:
            c, t = rng.choice(hot_c), rng.choice(hot_t)
        elif r < 0.99:
            c, t = rng.randint(0, customers - 1), rng.randint(0, terminals - 1)
        else:
            c, t = rng.randint(customers, 999999), rng.randint(terminals, 99999)
        amount = rng.randint(100, 25000) / 100
        bodies.append(json.dumps({"customer_id": f"C{c:06d}", "terminal_id": f"T{t:05d}",
                                  "amount": amount}, separators=(",", ":")).encode())
    return bodies


def send(port, bodies):
    """POSTs each body to /v1/predict over one keep-alive connection; returns the
    count of non-200 answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    bad = 0
    try:
        for body in bodies:
            conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:
                bad += 1
                if bad <= 3:
                    log(f"   answer {resp.status}: {body.decode()} -> {answer[:200]!r}")
    finally:
        conn.close()
    return bad


def wait_ready(port, proc, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} under valgrind before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout} s under valgrind")


def control(pid, *flags):
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def parse_functions(path):
    """(total, {(file, function): exclusive instructions}) of one callgrind dump.

    Read directly (callgrind_annotate 3.19 counts the frames above a thread's start
    as that thread's own cost when the dump comes from callgrind_control): a cost
    line belongs to the current function and source file (`fl=`, or `fi=`/`fe=` for
    code inlined from another file), except the line after `calls=`, which is the
    callee's inclusive cost."""
    total, functions = 0, {}
    file = sub_file = function = None
    after_call = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("fl="):
                file = sub_file = line[3:].rstrip("\n")
            elif line.startswith(("fi=", "fe=")):
                sub_file = line[3:].rstrip("\n")
            elif line.startswith("fn="):
                function = line[3:].rstrip("\n")
                sub_file = file
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith("totals:"):
                total = int(line.split()[1])
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_call:
                    after_call = False
                    continue
                fields = line.split()
                if len(fields) > 1 and function is not None:
                    key = (sub_file or "???", function)
                    functions[key] = functions.get(key, 0) + int(fields[1])
    return total, functions


def component(file, function):
    """The component of one (file, function) pair: by the function's name, else by
    the crate its source file belongs to (code inlined from there)."""
    for text in (function, file):
        for name, rx in COMPILED:
            if rx.search(text):
                return name
    return "other"


def thread_role(functions):
    """The component a whole thread belongs to, or None for a request thread (a tokio
    worker, the inference thread) whose functions are split one by one."""
    for name, rx in THREADS:
        if any(rx.search(function) for _, function in functions):
            return name
    return None


def split(threads):
    """{component: instructions} over every thread's functions."""
    parts = {name: 0 for name, _ in COMPONENTS}
    parts["other"] = 0
    for functions in threads:
        role = thread_role(functions)
        for (file, function), cost in functions.items():
            parts[role or component(file, function)] += cost
    return parts


def measure(name, cmd, port, sweep, bodies, warmup, out_dir, ready_timeout):
    base = os.path.join(out_dir, name.replace(" ", "-").replace(",", ""))
    vg = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
          f"--callgrind-out-file={base}.%p", "--dump-instr=no", "--compress-strings=no", *cmd]
    log(f"== {name}: {' '.join(cmd)}")
    # One runtime worker: with one connection and requests one at a time, a second
    # worker only adds parking and stealing whose count depends on timing.
    env = {**os.environ, "TOKIO_WORKER_THREADS": "1"}
    proc = subprocess.Popen(vg, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        took = wait_ready(port, proc, ready_timeout)
        log(f"   ready under valgrind in {took:.0f} s; warm-up: {len(sweep)} requests over the population, "
            f"then {warmup} of the mix")
        bad = send(port, sweep)
        bad += send(port, bodies[:warmup])
        control(proc.pid, "--zero")
        log(f"   {len(bodies) - warmup} measured requests")
        start = time.monotonic()
        bad += send(port, bodies[warmup:])
        wall = time.monotonic() - start
        control(proc.pid, "--dump")
    finally:
        stop(proc, timeout=120)
    # One file per thread for the dump: BASE.PID.1-NN (the exit's own dump has no part).
    dumps = sorted(glob.glob(f"{base}.{proc.pid}.1-*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {name} (looked for {base}.{proc.pid}.1-NN)")
    threads, total = [], 0
    for dump in dumps:
        thread_total, functions = parse_functions(dump)
        total += thread_total
        threads.append(functions)
    log(f"   {total:,} instructions in {len(dumps)} threads, {wall:.1f} s; non-200 answers {bad}")
    return {"total": total, "threads": threads, "non200": bad, "wall_s": wall, "dump": dumps[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per system (default 5000)")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="requests of the mix after the population sweep, before the counters are zeroed "
                             "(default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="the traffic's seed (default 1)")
    parser.add_argument("--binary", help="the modelwatch binary (default: the release build; implies --no-build)")
    parser.add_argument("--echo", help="the echo example's binary (default: the release build)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    parser.add_argument("--only", action="append", choices=["echo", "serve", "bare"],
                        help="measure only these systems (repeatable; default all three)")
    parser.add_argument("--linger", default="60s",
                        help="serve's --prediction-log-linger (default 60s, the longest: the log then commits "
                             "every 1,024 predictions, so the count does not depend on how long the run takes; "
                             "under load a 5 ms linger gathers hundreds of predictions per commit too)")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="an extra `modelwatch serve` argument (repeatable)")
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest functions of serve")
    parser.add_argument("--keep", help="keep the callgrind dumps in this directory (for callgrind_annotate)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"error: {tool} not found\nhint: apt-get install -y valgrind")
    binary, echo = release_binaries(args, echo=True)
    echo = args.echo or echo
    systems = args.only or ["echo", "serve", "bare"]

    data = tempfile.mkdtemp(prefix="modelwatch-callgrind-")
    out_dir = args.keep or tempfile.mkdtemp(prefix="modelwatch-callgrind-out-")
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    try:
        seed_store(binary, data)
        customers, terminals = stored_population(data)
        sweep = sweep_bodies(customers, terminals)
        bodies = realistic_bodies(args.warmup + args.requests, args.seed, customers, terminals)
        for system in systems:
            port = free_port()
            if system == "echo":
                cmd, name = [echo, f"127.0.0.1:{port}"], "echo"
            else:
                mport = free_port()
                cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                       "--metrics-listen", f"127.0.0.1:{mport}", "--prediction-log-linger", args.linger, "--cache-ttl", "1h",
                       "--refresh-interval", "1h",
                       # Valgrind runs the model some 50 times slower than the machine
                       # does; the direct-call estimate must not see that as a slow model.
                       "--direct-below", "1s",
                       *args.serve_arg]
                name = "serve"
                if system == "bare":
                    cmd.append("--no-instrumentation")
                    name = "serve, no instrumentation"
            results[name] = measure(name, cmd, port, sweep, bodies, args.warmup, out_dir, ready_timeout=600)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)

    n = args.requests
    names = list(results)
    width = max(14, *(len(x) + 2 for x in names))
    print(f"instructions per request, {n} requests of the realistic mix (seed {args.seed}), "
          f"one at a time, after a sweep of the population and {args.warmup} warm-up requests")
    print()
    print(f"{'component':<30}" + "".join(f"{x:>{width}}" for x in names))
    splits = {x: split(results[x]["threads"]) for x in names}
    for part in [c for c, _ in COMPONENTS] + ["other"]:
        cells = "".join(f"{splits[x][part] / n:>{width},.0f}" for x in names)
        print(f"{part:<30}{cells}")
    print(f"{'total':<30}" + "".join(f"{results[x]['total'] / n:>{width},.0f}" for x in names))
    for x in names:
        if abs(sum(splits[x].values()) - results[x]["total"]) > results[x]["total"] * 0.001:
            log(f"warning: {x}'s components add up to {sum(splits[x].values()):,}, its total is "
                f"{results[x]['total']:,}: callgrind_annotate listed a function twice")
    print(f"{'non-200 answers':<30}" + "".join(f"{results[x]['non200']:>{width}}" for x in names))
    if "serve" in results and "serve, no instrumentation" in results:
        s, b = results["serve"]["total"], results["serve, no instrumentation"]["total"]
        print()
        own = splits["serve"]["metrics and drift"] - splits["serve, no instrumentation"]["metrics and drift"]
        print(f"instrumentation, its own code (metrics and drift, serve minus bare): {own / n:,.0f} instructions "
              f"per request, {own / s:.1%} of serve's (target: at most 3%)")
        def without_log(name):
            return sum(sum(f.values()) for f in results[name]["threads"] if thread_role(f) != "prediction log")

        rest = without_log("serve") - without_log("serve, no instrumentation")
        print(f"instrumentation, everything but the prediction log's writer (serve minus bare): {rest / n:,.0f} "
              f"instructions per request, {rest / s:.1%} of serve's")
        print(f"  (the writer's durable commits follow the clock, once a second: its count moves by a few hundred "
              f"between runs; the whole-process difference is {(s - b) / n:,.0f}, {(s - b) / s:.1%})")
    if "serve" in results and "echo" in results:
        print(f"serve / echo instructions: {results['serve']['total'] / results['echo']['total']:.2f}")
    if args.top and "serve" in results:
        print()
        print(f"serve's {args.top} costliest functions (own instructions per request, component):")
        merged = {}
        for functions in results["serve"]["threads"]:
            for key, cost in functions.items():
                merged[key] = merged.get(key, 0) + cost
        ranked = sorted(merged.items(), key=lambda kv: -kv[1])[: args.top]
        for (file, fn), cost in ranked:
            print(f"  {cost / n:>9,.0f}  {component(file, fn):<26} {fn[:120]}  ({os.path.basename(file)})")
    if args.keep:
        print()
        print(f"dumps kept in {out_dir}; e.g. callgrind_annotate --inclusive=yes {results[names[-1]]['dump']}")
    if args.json:
        print(json.dumps({x: {k: v for k, v in r.items() if k != "threads"} | {"split": splits[x]}
                          for x, r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
