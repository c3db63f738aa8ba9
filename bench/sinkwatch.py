#!/usr/bin/env python3
"""sinkwatch.py: Postfix smtp-sinks with a message counter and a connection sampler, for
bench/drain-bench.sh and bench/many-destinations-bench.sh.

Starts one `smtp-sink -c -u nobody ADDR:PORT BACKLOG [EXTRA...]` per --sink, reads their
counters ("mesg=K"), and writes one line to --fifo once the sum reaches --expect:
  DONE <time_ns> <count> <t50_ns> <t90_ns> <t99_ns>
                             (CLOCK_REALTIME, like `date +%s%N`; tNN: when NN % had come)
  STALL <count>              (no new message for --stall seconds)
While running, it samples every --interval seconds how many TCP connections are established
to the sinks' addresses (/proc/net/tcp, the server side) and, once a second, the SYN counter
of an nftables named counter (--nft "FAMILY TABLE COUNTER"): connections opened to the
sinks. Each second's line goes to --samples:
  <unix_s> <syns_total> <established_now> <established_peak_this_second> <messages_total>
The peak is the largest count seen in two samples in a row: /proc/net/tcp is not read
atomically, and a socket moved in the hash table while it is read can be counted twice.
Runs until SIGTERM (then the sinks are stopped) or until all sinks exit.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time

PAT = re.compile(rb"mesg=(\d+)")


def hexaddr(addr):
    """'127.0.0.1:25' -> the /proc/net/tcp spelling of the local address ('0100007F:0019')."""
    host, port = addr.rsplit(":", 1)
    parts = [int(p) for p in host.split(".")]
    ip = "%02X%02X%02X%02X" % (parts[3], parts[2], parts[1], parts[0])
    return "%s:%04X" % (ip, int(port))


def established(locals_):
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split(None, 4)
                if fields[3] == "01" and fields[1] in locals_:
                    n += 1
    except OSError:
        pass
    return n


def nft_count(spec):
    if not spec:
        return 0
    family, table, counter = spec.split()
    try:
        out = subprocess.run(["nft", "list", "counter", family, table, counter],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1
    m = re.search(r"packets (\d+)", out)
    return int(m.group(1)) if m else -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sink", action="append", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--fifo", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--nft", default="")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--stall", type=float, default=120)
    ap.add_argument("--sink-args", default="", help="extra smtp-sink options, space separated")
    a = ap.parse_args()

    counts = [0] * len(a.sink)
    state = {"changed": time.monotonic(), "done": False, "stop": False}
    marks = {50: 0, 90: 0, 99: 0}
    lock = threading.Lock()
    procs = []
    for addr in a.sink:
        cmd = ["smtp-sink", "-c", "-u", "nobody"] + a.sink_args.split() + [addr, "1000"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr))

    def report(text):
        with open(a.fifo, "w") as f:
            f.write(text + "\n")

    def reader(i, proc):
        tail = b""
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return
            m = PAT.findall(tail + chunk)
            tail = chunk[-32:]
            if not m:
                continue
            with lock:
                c = int(m[-1])
                if c != counts[i]:
                    counts[i] = c
                    state["changed"] = time.monotonic()
                total = sum(counts)
                for pct in marks:
                    if not marks[pct] and total * 100 >= a.expect * pct:
                        marks[pct] = time.time_ns()
                if total >= a.expect and not state["done"]:
                    state["done"] = True
                    report("DONE %d %d %d %d %d" % (time.time_ns(), total, marks[50], marks[90], marks[99]))

    for i, p in enumerate(procs):
        threading.Thread(target=reader, args=(i, p), daemon=True).start()

    def stop(*_):
        state["stop"] = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    locals_ = {hexaddr(s) for s in a.sink}
    with open(a.samples, "w") as out:
        second = int(time.time())
        peak = prev = 0
        while not state["stop"] and any(p.poll() is None for p in procs):
            time.sleep(a.interval)
            now = established(locals_)
            peak = max(peak, min(prev, now))
            prev = now
            t = int(time.time())
            if t != second:
                with lock:
                    total = sum(counts)
                out.write("%d %d %d %d %d\n" % (second, nft_count(a.nft), now, peak, total))
                out.flush()
                second, peak = t, now
            with lock:
                stalled = (not state["done"] and a.expect > 0
                           and time.monotonic() - state["changed"] > a.stall)
                if stalled:
                    state["done"] = True
            if stalled:
                report("STALL %d" % sum(counts))
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        p.wait()


if __name__ == "__main__":
    main()
