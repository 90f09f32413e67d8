#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU's own migration of a paused guest, the reference rdmig is compared with.

Two paused QEMUs (-S) whose RAM is a file in /dev/shm (memory-backend-file,
share=on: shared memory, as fast as a plain RAM backend, and both sides can be
compared afterwards without slowing QEMU while it migrates); the source's file
is filled with random bytes so nothing is a zero page. The source migrates over
tcp: or rdma: with max-bandwidth raised (QEMU's default is 128 MiB/s), with
--multifd N over N multifd channels (tcp only, as in QEMU), and QMP's
query-migrate gives the figures. Prints one JSON line in the form
bench/compare.sh reads:

  bench/qemu-migrate.py --transport tcp|rdma --host ADDR --ram MiB [--multifd N] [--name NAME]
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import time

from qemu_qmp import RAM_DIR, Qmp, children_cpu, qemu, ram_files


def main():
    # Killed: unwind, so the QEMUs and their RAM files in /dev/shm go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", default="tcp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ram", type=int, default=64)
    ap.add_argument("--name", default=None)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--multifd", type=int, default=0)
    a = ap.parse_args()
    name = a.name or f"qemu {a.transport}"
    port = a.port or (20000 + os.getpid() % 20000)
    row = {"name": name, "transport": a.transport, "status": "failed", "total_time_ms": 0,
           "setup_time_ms": 0, "downtime_ms": 0, "bytes_sent": 0, "src_cpu_s": 0.0,
           "dest_cpu_s": 0.0, "verified": False, "error": ""}
    procs = []
    with tempfile.TemporaryDirectory(prefix="rdmig-qemu-", dir=RAM_DIR) as d:
        src_mem, dst_mem = ram_files(d, a.ram)
        host = f"[{a.host}]" if ":" in a.host else a.host
        uri = f"{a.transport}:{host}:{port}"
        try:
            dst = qemu(a.ram, dst_mem, os.path.join(d, "dst.qmp"), ["-incoming", "defer"])
            procs.append(dst)
            dq = Qmp(os.path.join(d, "dst.qmp"))
            src = qemu(a.ram, src_mem, os.path.join(d, "src.qmp"), [])
            procs.append(src)
            sq = Qmp(os.path.join(d, "src.qmp"))
            if a.multifd:
                for q in (sq, dq):
                    q.cmd("migrate-set-capabilities",
                          capabilities=[{"capability": "multifd", "state": True}])
                    q.cmd("migrate-set-parameters", **{"multifd-channels": a.multifd})
            sq.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
            dq.cmd("migrate-incoming", uri=uri)
            sq.cmd("migrate", uri=uri)
            deadline = time.time() + a.timeout
            while time.time() < deadline:
                q = sq.cmd("query-migrate")
                if q.get("status") in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            row["status"] = q.get("status", "unknown")
            row["total_time_ms"] = q.get("total-time", 0)
            row["setup_time_ms"] = q.get("setup-time", 0)
            row["downtime_ms"] = q.get("downtime", 0)
            row["bytes_sent"] = q.get("ram", {}).get("transferred", 0)
            row["error"] = q.get("error-desc", "")
            dq.cmd("query-status")
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
            row["src_cpu_s"] = round(children_cpu(), 3)  # both QEMUs: no per-process split
            # Same bytes at the destination, or it did not migrate.
            with open(src_mem, "rb") as s, open(dst_mem, "rb") as t:
                row["verified"] = row["status"] == "completed" and s.read() == t.read()
        except Exception as e:  # report, never hang
            row["error"] = str(e) + "".join(p.stderr.read()[-300:] for p in procs if p.poll() is not None)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    print(json.dumps(row))
    return 0 if row["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
