"""The machine's load during a benchmark, so a disturbed run can be seen: the load
average, and the CPU that processes the benchmark did not start took meanwhile
(from /proc/stat, minus the benchmark's own process tree)."""

import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def busy_ticks():
    """CPU ticks the whole machine spent on anything but idle and I/O wait."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def processes():
    """{pid: (parent pid, CPU ticks of it and of its reaped children)} of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def own_ticks(table):
    """CPU ticks of this script and every process under it (the three systems and their
    workers; wrk once it has been waited for)."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += table.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


def child_ticks(table, parent):
    return {pid: ticks for pid, (ppid, ticks) in table.items() if ppid == parent}


def measured(run, workers_of=None):
    """Runs `run()` (one wrk) and adds the CPU the machine gave to processes this script
    did not start meanwhile, in cores. With `workers_of` (the uvicorn master's pid), also
    the busiest worker's share of the workers' CPU: uvicorn's workers share one listening
    socket, and one of them may accept all of wrk's connections."""
    started, busy, before = time.perf_counter(), busy_ticks(), processes()
    rps, p50, p99, non2xx = run()
    wall, after = time.perf_counter() - started, processes()
    foreign = ((busy_ticks() - busy) - (own_ticks(after) - own_ticks(before))) / CLK_TCK / wall
    result = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": non2xx, "foreign_cores": foreign}
    if workers_of is not None:
        start_ticks = child_ticks(before, workers_of)
        spent = [t - start_ticks.get(pid, 0) for pid, t in child_ticks(after, workers_of).items()]
        result["busiest_worker_share"] = max(spent) / sum(spent) if sum(spent) else None
    return result
