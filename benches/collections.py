#!/usr/bin/env python3
"""Big collections: a 1,000,000-member hash and a 1,000,000-member sorted set in Redis 7 (AOF
always) and in a 1-node rockraft on this machine. Prints the load time, the server's RSS and
its files on disk after each load, and how long DEL of each takes.

Run through benches/collections.sh, which builds first.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def cli(port, *args, timeout=600):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=timeout).stdout.strip()


def wait_writable(port):
    for _ in range(600):
        try:
            if cli(port, "SET", "__probe__", "1", timeout=5) == "OK":
                cli(port, "DEL", "__probe__")
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.1)
    sys.exit(f"nothing writable on port {port}")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def du_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / (1 << 20)


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def load(port, kind, members, per_command=100):
    """HSET big f<i> v<i> / ZADD big <i> m<i>, `per_command` pairs a command, through --pipe."""
    chunks = []
    for start in range(0, members, per_command):
        args = ["HSET" if kind == "hash" else "ZADD", kind]
        for i in range(start, min(start + per_command, members)):
            args += [f"field:{i}", f"value:{i}"] if kind == "hash" else [str((i * 7919) % 1000003), f"member:{i}"]
        chunks.append(resp(*args))
    data = b"".join(chunks)
    t0 = time.time()
    out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, capture_output=True, timeout=3600)
    took = time.time() - t0
    if b"errors: 0" not in out.stdout:
        sys.exit(f"loading {kind} into {port} failed: {out.stdout[-300:]!r} {out.stderr[-300:]!r}")
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--bin-dir", required=True)
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rockraft-collections-")
    procs = {}
    try:
        os.makedirs(os.path.join(work, "redis"))
        procs["redis"] = (subprocess.Popen(
            ["redis-server", "--port", "17580", "--bind", "127.0.0.1", "--dir", os.path.join(work, "redis"),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--logfile", os.path.join(work, "redis.log")]), 17580, os.path.join(work, "redis"))
        procs["rockraft"] = (subprocess.Popen(
            [os.path.join(opts.bin_dir, "rockraft-server"), "--port", "17579", "--bus-port", "17679",
             "--data-dir", os.path.join(work, "rockraft"), "--metrics-addr", "off", "--log-level", "warn"],
            stderr=subprocess.DEVNULL), 17579, os.path.join(work, "rockraft"))
        for _, port, _ in procs.values():
            wait_writable(port)
        print(f"{opts.members} members per collection; Redis 7 with appendonly yes, appendfsync always; "
              "rockraft 1 node; 100 members per HSET/ZADD, through redis-cli --pipe")
        rows = [("", "load s", "RSS MB (+load)", "disk MB", "DEL ms")]
        for kind in ["hash", "zset"]:
            for name, (proc, port, path) in procs.items():
                rss_before = rss_mb(proc.pid)
                took = load(port, kind, opts.members)
                time.sleep(5)  # let memtables flush and AOF writes land
                rss_after = rss_mb(proc.pid)
                disk = du_mb(path)
                card = cli(port, "HLEN" if kind == "hash" else "ZCARD", kind)
                if card != str(opts.members):
                    sys.exit(f"{name}: {kind} has {card} members")
                t0 = time.time()
                cli(port, "DEL", kind)
                del_ms = (time.time() - t0) * 1000
                rows.append((f"{kind} in {name}", f"{took:.1f}", f"{rss_after:.0f} (+{rss_after - rss_before:.0f})",
                             f"{disk:.0f}", f"{del_ms:.0f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.rjust(widths[i]) for i, c in enumerate(r)))
        print("RSS: after the load (growth during it); disk: the server's whole directory after the load "
              "(Redis: its AOF; rockraft: RocksDB with the raft log); DEL: one client round trip.")
    finally:
        for proc, _, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
