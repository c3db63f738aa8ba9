#!/usr/bin/env python3
"""inject.py: N messages over SMTP to one MTA, message i to rcpt@<domain i mod D>, for
bench/many-destinations-bench.sh (smtp-source sends every message to one recipient).

  inject.py HOST PORT N --domains D [--sessions S] [--size BYTES] [--pattern d%05d.bench]

S processes, each with one SMTP session it reuses for its share of the messages (one
recipient per message, like smtp-source -s S). Prints "sent K failed F seconds T" and exits
1 if any message was refused.
"""
import argparse
import multiprocessing
import smtplib
import sys
import time


def worker(args, first, step, out):
    body = ("From: bench@example.org\r\nSubject: bench\r\n\r\n"
            + ("x" * 76 + "\r\n") * max(1, args.size // 78))
    sent = failed = 0
    smtp = smtplib.SMTP(args.host, args.port, timeout=300)
    smtp.ehlo("inject.bench")
    for i in range(first, args.n, step):
        rcpt = "rcpt@" + args.pattern % (i % args.domains)
        try:
            refused = smtp.sendmail("bench@example.org", [rcpt], body)
            sent += 0 if refused else 1
        except smtplib.SMTPException as e:
            failed += 1
            if failed <= 3:
                print("inject: %s: %s" % (rcpt, e), file=sys.stderr)
            try:
                smtp.rset()
            except smtplib.SMTPException:
                smtp = smtplib.SMTP(args.host, args.port, timeout=300)
                smtp.ehlo("inject.bench")
    try:
        smtp.quit()
    except smtplib.SMTPException:
        pass
    out.put((sent, failed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--domains", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--pattern", default="d%05d.bench")
    args = ap.parse_args()
    out = multiprocessing.Queue()
    t0 = time.time()
    procs = [multiprocessing.Process(target=worker, args=(args, k, args.sessions, out))
             for k in range(args.sessions)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    sent = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    print("sent %d failed %d seconds %.2f" % (sent, failed, time.time() - t0))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
