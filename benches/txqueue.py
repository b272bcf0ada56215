#!/usr/bin/env python3
"""Transaction and blocking-queue round trips (issue 14's figures), against one server:
  tx     MULTI; INCR a; INCR b; INCR c; EXEC, sent as one write per transaction;
  queue  LPUSH q<n> x, then BRPOP q<n> 1 (each connection on a list of its own).
Connections are spread over processes (threads within each; the GIL is released while a
socket waits). Prints transactions (or push+pop pairs) per second.
Usage: txqueue.py --port P --kind tx|queue [--conns 48] [--seconds 10]
"""

import argparse
import multiprocessing
import socket
import threading
import time


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            n = int(rest)
            return [self.reply() for _ in range(max(n, 0))] if n >= 0 else None
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest


TX = encode("MULTI") + encode("INCR", "a") + encode("INCR", "b") + encode("INCR", "c") + encode("EXEC")


def run_thread(port, kind, index, deadline, counts):
    c = Conn(port)
    n = 0
    push = encode("LPUSH", f"q{index}", "x")
    pop = encode("BRPOP", f"q{index}", "1")
    while time.time() < deadline:
        if kind == "tx":
            c.s.sendall(TX)
            for _ in range(4):
                c.reply()
            if c.reply() is None:
                raise RuntimeError("EXEC aborted")
        else:
            c.s.sendall(push)
            c.reply()
            c.s.sendall(pop)
            if c.reply() is None:
                raise RuntimeError("BRPOP timed out")
        n += 1
    counts.append(n)


def run_process(port, kind, first, conns, deadline, out):
    counts = []
    threads = [threading.Thread(target=run_thread, args=(port, kind, first + i, deadline, counts))
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sum(counts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=["tx", "queue"], required=True)
    ap.add_argument("--conns", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=4)
    o = ap.parse_args()
    out = multiprocessing.Queue()
    start = time.time()
    deadline = start + o.seconds
    per = o.conns // o.procs
    procs = [multiprocessing.Process(target=run_process, args=(o.port, o.kind, p * per, per, deadline, out))
             for p in range(o.procs)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    print(f"{total / (time.time() - start):.0f}")


if __name__ == "__main__":
    main()
