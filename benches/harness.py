#!/usr/bin/env python3
"""Side-by-side benchmark: Redis 7 (AOF always), a 1-node rockraft and a 3-node rockraft, all on
this machine, driven by the same redis-benchmark workloads. Prints one table (ops/s, p50, p99,
and rockraft/Redis ratios) and writes it as CSV.

Systems are alternated within every workload (the order rotates from one workload to the next),
so machine noise hits every system alike. Run through benches/run.sh, which builds first.
"""

import argparse
import csv
import os
import shutil
import signal
import hashlib
import subprocess
import sys
import tempfile
import time

WORKLOADS = [
    # (name, redis-benchmark args)
    ("SET -c 1", ["-t", "set", "-c", "1"]),
    ("GET -c 1", ["-t", "get", "-c", "1"]),
    ("SET -c 50", ["-t", "set", "-c", "50"]),
    ("GET -c 50", ["-t", "get", "-c", "50"]),
    ("SET -c 50 -P 16", ["-t", "set", "-c", "50", "-P", "16"]),
    ("GET -c 50 -P 16", ["-t", "get", "-c", "50", "-P", "16"]),
]
SYSTEMS = ["redis", "rockraft-1", "rockraft-3"]
INCR_SCRIPT = "return redis.call('INCR', KEYS[1])"
SCRIPT_WORKLOADS = [
    ("EVAL INCR -c 50", ["-c", "50", "EVAL", INCR_SCRIPT, "1", "key:__rand_int__"]),
    ("EVALSHA INCR -c 50", ["-c", "50", "EVALSHA", hashlib.sha1(INCR_SCRIPT.encode()).hexdigest(), "1", "key:__rand_int__"]),
    ("FCALL incr -c 50", ["-c", "50", "FCALL", "incr", "1", "key:__rand_int__"]),
    ("FCALL get (no-writes) -c 50", ["-c", "50", "FCALL", "get", "1", "key:__rand_int__"]),
]
STREAM_VALUE = "v" * 64
STREAM_WORKLOADS = [
    ("XADD * -c 50", ["-c", "50", "XADD", "bench:stream", "*", "f", STREAM_VALUE]),
    ("XADD MAXLEN ~ 10000 * -c 50", ["-c", "50", "XADD", "bench:capped", "MAXLEN", "~", "10000", "*", "f", STREAM_VALUE]),
]
BENCH_LIBRARY = """#!lua name=bench
redis.register_function('incr', function(keys) return redis.call('INCR', keys[1]) end)
redis.register_function{function_name='get', flags={'no-writes'}, callback=function(keys) return redis.call('GET', keys[1]) end}
"""


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10).stdout.strip()


def wait_writable(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cli(port, "SET", "__probe__", "1") == "OK":
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.1)
    sys.exit(f"node on port {port} never accepted a write")


def leader_port(ports):
    for p in ports:
        if "raft_role:leader" in cli(p, "INFO", "raft"):
            return p
    sys.exit("no leader in the 3-node cluster")


def cpu_seconds(pids):
    """User + system CPU time of the processes, from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def disk_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def bench(port, args, requests, pids=(), keyspace=100000, value_bytes=64):
    """(ops/s, p50 ms, p99 ms, server CPU µs per op) of one redis-benchmark run."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-d", str(value_bytes), "-r", str(keyspace),
           "--csv", *args]
    before = cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600).stdout
    cpu = cpu_seconds(pids) - before
    rows = list(csv.DictReader(out.splitlines()))
    if not rows:
        sys.exit(f"redis-benchmark printed no result: {' '.join(cmd)}")
    r = rows[-1]
    return float(r["rps"]), float(r["p50_latency_ms"]), float(r["p99_latency_ms"]), cpu * 1e6 / requests


def bench_all(port, requests):
    """redis-benchmark's whole default list (no -t): {test: (rps, p50, p99)}, in its order."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-r", "100000", "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200).stdout
    rows = list(csv.DictReader(out.splitlines()))
    if not rows:
        sys.exit(f"redis-benchmark printed no result: {' '.join(cmd)}")
    return {r["test"]: (float(r["rps"]), float(r["p50_latency_ms"]), float(r["p99_latency_ms"])) for r in rows}


GROWTH_WORKLOADS = [
    # (name, redis-benchmark args, value bytes)
    ("SET -c 1000", ["-t", "set", "-c", "1000"], 64),
    ("SET -c 50 -d 4096", ["-t", "set", "-c", "50"], 4096),
    ("GET -c 50 -d 4096", ["-t", "get", "-c", "50"], 4096),
    ("HSET -c 50", ["-t", "hset", "-c", "50"], 64),
    ("LPUSH -c 50", ["-t", "lpush", "-c", "50"], 64),
    ("ZADD -c 50", ["-t", "zadd", "-c", "50"], 64),
]


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).rjust(widths[i]) for i, c in enumerate(r)))


def growth(opts, ports, pids, dirs):
    """SET/GET as connections, values and key counts grow, and the new types' writes; then the
    memory (RSS) and disk each system uses per million keys."""
    header = ["workload"] + [f"{s} {col}" for s in SYSTEMS for col in ("ops/s", "p99 ms", "CPU us/op")]
    header += ["rockraft-1/redis", "rockraft-3/redis"]
    rows = []
    for w, (name, args, value) in enumerate(GROWTH_WORKLOADS):
        res = {}
        for system in SYSTEMS[w % 3:] + SYSTEMS[:w % 3]:
            res[system] = bench(ports[system], args, opts.requests, pids[system], value_bytes=value)
        rows.append([name] + [x for s in SYSTEMS for x in (f"{res[s][0]:.0f}", f"{res[s][2]:.3f}", f"{res[s][3]:.1f}")]
                    + [f"{res['rockraft-1'][0] / res['redis'][0]:.2f}", f"{res['rockraft-3'][0] / res['redis'][0]:.2f}"])
    keys = opts.growth_keys
    loaded = {}
    for system in SYSTEMS:
        cli(ports[system], "FLUSHALL")
        start = time.time()
        bench(ports[system], ["-t", "set", "-c", "50", "-P", "16"], 2 * keys, pids[system], keyspace=keys)
        loaded[system] = (int(cli(ports[system], "DBSIZE")), time.time() - start)
    for name, args in [(f"SET -c 50 ({keys:,} keys)", ["-t", "set", "-c", "50"]),
                       (f"GET -c 50 ({keys:,} keys)", ["-t", "get", "-c", "50"])]:
        res = {s: bench(ports[s], args, opts.requests, pids[s], keyspace=keys) for s in SYSTEMS}
        rows.append([name] + [x for s in SYSTEMS for x in (f"{res[s][0]:.0f}", f"{res[s][2]:.3f}", f"{res[s][3]:.1f}")]
                    + [f"{res['rockraft-1'][0] / res['redis'][0]:.2f}", f"{res['rockraft-3'][0] / res['redis'][0]:.2f}"])
    print_table(header, rows)
    print(f"after loading with SET -P 16 -r {keys:,} (64-byte values), sums over a system's processes and data dirs:")
    size_header = ["system", "keys", "load s", "RSS MB", "disk MB", "RSS MB / M keys", "disk MB / M keys"]
    size_rows = []
    for s in SYSTEMS:
        n, took = loaded[s]
        rss, disk = rss_bytes(pids[s]) / 1e6, disk_bytes(dirs[s]) / 1e6
        per = max(n, 1) / 1e6
        size_rows.append([s, f"{n:,}", f"{took:.0f}", f"{rss:.0f}", f"{disk:.0f}", f"{rss / per:.0f}", f"{disk / per:.0f}"])
    print_table(size_header, size_rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=100000, help="requests per -c 50 workload")
    ap.add_argument("--csv", default="bench-results.csv", help="where to write the table")
    ap.add_argument("--bin-dir", required=True, help="directory with rockraft-server and rockraft-ctl")
    ap.add_argument("--scripts", action="store_true",
                    help="EVAL and EVALSHA of return redis.call('INCR', KEYS[1]), FCALL of the same and of a "
                         "no-writes GET function, on key:__rand_int__, instead")
    ap.add_argument("--transactions", action="store_true",
                    help="MULTI/EXEC of 3 INCRs and LPUSH-to-blocked-BRPOP deliveries (benches/txqueue.rs) instead")
    ap.add_argument("--pubsub", action="store_true",
                    help="PUBLISH throughput and delivery latency to 10 subscribers on each node (benches/pubsub.rs) instead")
    ap.add_argument("--streams", action="store_true",
                    help="XADD throughput (redis-benchmark, one stream), then XREADGROUP COUNT 10 + XACK of a "
                         "50,000-entry stream by 8 consumers of one group (benches/streams.rs) instead")
    ap.add_argument("--growth", action="store_true",
                    help="how cost grows instead: SET with 1,000 connections, 4 KB values, HSET/LPUSH/ZADD, then "
                         "SET/GET over --growth-keys loaded keys with RSS and disk per million keys")
    ap.add_argument("--growth-keys", type=int, default=10_000_000,
                    help="keys loaded for --growth (redis-benchmark -r: random, so about 86%% of them distinct)")
    ap.add_argument("--default-list", action="store_true",
                    help="run redis-benchmark's whole default list (no -t, -n REQUESTS -r 100000) instead")
    opts = ap.parse_args()

    work = tempfile.mkdtemp(prefix="rockraft-bench-")
    procs = []
    ctl = os.path.join(opts.bin_dir, "rockraft-ctl")
    try:
        procs.append(subprocess.Popen(
            ["redis-server", "--port", "17380", "--bind", "127.0.0.1", "--dir", work, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--logfile", os.path.join(work, "redis.log")]))
        procs.append(subprocess.Popen(
            [os.path.join(opts.bin_dir, "rockraft-server"), "--port", "17379", "--bus-port", "17479",
             "--data-dir", os.path.join(work, "single"), "--metrics-addr", "off", "--log-level", "warn"],
            stderr=subprocess.DEVNULL))
        subprocess.run([ctl, "cluster", "up", "--nodes", "3", "--base-port", "17401",
                        "--dir", os.path.join(work, "cluster")], check=True, stdout=subprocess.DEVNULL)
        wait_writable(17380)
        wait_writable(17379)
        ports = {"redis": 17380, "rockraft-1": 17379, "rockraft-3": leader_port([17401, 17402, 17403])}
        with open(os.path.join(work, "cluster", "pids")) as f:
            cluster_pids = [int(l) for l in f.read().split()]
        # Whose CPU time a system's operations cost: every node of the 3-node cluster.
        pids = {"redis": [procs[0].pid], "rockraft-1": [procs[1].pid], "rockraft-3": cluster_pids}
        dirs = {"redis": os.path.join(work, "appendonlydir"), "rockraft-1": os.path.join(work, "single"), "rockraft-3": os.path.join(work, "cluster")}
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
        print(f"machine: {os.cpu_count()} cores; redis {redis_version} (appendonly yes, appendfsync always); "
              f"rockraft 1 node and 3 nodes (leader), all on this machine; -d 64 -r 100000")

        if opts.transactions:
            print("48 connections, 10 s per run; tx: MULTI, INCR a, INCR b, INCR c, EXEC in one write; "
                  "queue: 24 pairs, a consumer blocked in BRPOP q<n> and a producer that LPUSHes q<n> "
                  "0.1 ms after the consumer is waiting again (deliveries/s)")
            print(f"{'workload':>8}  " + "  ".join(f"{s:>12}" for s in SYSTEMS) + "  r1/redis  r3/redis")
            for w, kind in enumerate(["tx", "queue"]):
                rates = {}
                for system in SYSTEMS[w % 3:] + SYSTEMS[:w % 3]:
                    out = subprocess.run([os.path.join(opts.bin_dir, "txqueue"), "--port", str(ports[system]),
                                          "--kind", kind], capture_output=True, text=True, timeout=300)
                    if out.returncode != 0:
                        sys.exit(f"txqueue --kind {kind} on {system} failed: {out.stderr}")
                    rates[system] = float(out.stdout.strip())
                r = [rates[s] for s in SYSTEMS]
                print(f"{kind:>8}  " + "  ".join(f"{x:>12.0f}" for x in r) + f"  {r[1] / r[0]:>8.2f}  {r[2] / r[0]:>8.2f}")
            return

        if opts.pubsub:
            print("8 publisher connections (PUBLISH one at a time, 64-byte messages) on one node, 10 s; "
                  "10 subscribers on each node of the system (Redis and rockraft 1 node: 30 on it)")
            print(f"{'system':>11}  {'publishes/s':>12}  {'deliveries/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}")
            layouts = {"redis": ([17380], 30), "rockraft-1": ([17379], 30), "rockraft-3": ([17401, 17402, 17403], 10)}
            for system in SYSTEMS:
                plist, subs = layouts[system]
                out = subprocess.run([os.path.join(opts.bin_dir, "pubsubload"), "--ports", ",".join(map(str, plist)),
                                      "--subs", str(subs)], capture_output=True, text=True, timeout=300)
                if out.returncode != 0:
                    sys.exit(f"pubsubload on {system} failed: {out.stderr}")
                pubs, dels, p50, p99 = out.stdout.split()
                print(f"{system:>11}  {float(pubs):>12.0f}  {float(dels):>12.0f}  {float(p50):>7.3f}  {float(p99):>7.3f}")
            return

        if opts.growth:
            growth(opts, ports, pids, dirs)
            return

        if opts.default_list:
            print(f"redis-benchmark -q -n {opts.requests} -r 100000 (its default list; -c 50, 3-byte values)")
            lists = {s: bench_all(ports[s], opts.requests) for s in SYSTEMS}
            header = ["test"] + [f"{s} ops/s" for s in SYSTEMS] + ["rockraft-1/redis", "rockraft-3/redis"]
            rows = []
            for test in lists["redis"]:
                rps = [lists[s].get(test, (0.0, 0, 0))[0] for s in SYSTEMS]
                rows.append([test] + [f"{r:.0f}" for r in rps] + [f"{rps[1] / rps[0]:.2f}", f"{rps[2] / rps[0]:.2f}"])
            with open(opts.csv, "w", newline="") as f:
                csv.writer(f).writerows([header] + rows)
            widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
            for r in [header] + rows:
                print("  ".join(str(c).rjust(widths[i]) for i, c in enumerate(r)))
            print(f"(written to {opts.csv})")
            return

        workloads = WORKLOADS
        if opts.streams:
            workloads = STREAM_WORKLOADS
            print("XREADGROUP+XACK: 8 consumers of one group read COUNT 10 with '>' and XACK each batch, "
                  "until a 50,000-entry stream is drained (entries/s)")
            rates = {}
            for system in SYSTEMS:
                out = subprocess.run([os.path.join(opts.bin_dir, "streamload"), "--port", str(ports[system])],
                                     capture_output=True, text=True, timeout=900)
                if out.returncode != 0:
                    sys.exit(f"streamload on {system} failed: {out.stderr}")
                rates[system] = float(out.stdout.strip())
            r = [rates[s] for s in SYSTEMS]
            print(f"{'XREADGROUP+XACK':>16}  " + "  ".join(f"{s}: {x:.0f}" for s, x in zip(SYSTEMS, r))
                  + f"  r1/redis {r[1] / r[0]:.2f}  r3/redis {r[2] / r[0]:.2f}")
        if opts.scripts:
            workloads = SCRIPT_WORKLOADS
            for system in SYSTEMS:
                if cli(ports[system], "SCRIPT", "LOAD", INCR_SCRIPT) != hashlib.sha1(INCR_SCRIPT.encode()).hexdigest():
                    sys.exit(f"SCRIPT LOAD failed on {system}")
                if cli(ports[system], "FUNCTION", "LOAD", "REPLACE", BENCH_LIBRARY) != "bench":
                    sys.exit(f"FUNCTION LOAD failed on {system}")
        results = {}
        for w, (name, args) in enumerate(workloads):
            # One client is slow and pipelines are fast: scale so each run takes similar time.
            if name.endswith("-c 1"):
                requests = opts.requests // 10
            elif "-P 16" in name:
                requests = opts.requests * 4
            else:
                requests = opts.requests
            order = SYSTEMS[w % 3:] + SYSTEMS[:w % 3]
            for system in order:
                results[(name, system)] = bench(ports[system], args, requests, pids[system])

        header = ["workload"]
        for s in SYSTEMS:
            header += [f"{s} ops/s", f"{s} p50 ms", f"{s} p99 ms", f"{s} CPU us/op"]
        header += ["rockraft-1/redis", "rockraft-3/redis", "p99 rockraft-1/redis", "p99 rockraft-3/redis"]
        rows = []
        for name, _ in workloads:
            row = [name]
            for s in SYSTEMS:
                rps, p50, p99, cpu = results[(name, s)]
                row += [f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}", f"{cpu:.1f}"]
            base = results[(name, "redis")][0]
            row += [f"{results[(name, 'rockraft-1')][0] / base:.2f}", f"{results[(name, 'rockraft-3')][0] / base:.2f}"]
            base_p99 = max(results[(name, "redis")][2], 0.001)
            row += [f"{results[(name, 'rockraft-1')][2] / base_p99:.2f}", f"{results[(name, 'rockraft-3')][2] / base_p99:.2f}"]
            rows.append(row)
        with open(opts.csv, "w", newline="") as f:
            csv.writer(f).writerows([header] + rows)
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(c).rjust(widths[i]) for i, c in enumerate(r)))
        print(f"(written to {opts.csv})")
    finally:
        subprocess.run([ctl, "cluster", "down", "--dir", os.path.join(work, "cluster")], capture_output=True)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
