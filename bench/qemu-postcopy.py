#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU's own postcopy, the reference for bench/compare.sh --postcopy.

The source QEMU runs a guest that dirties its RAM without end: a boot sector
that enters 32-bit mode and adds one to the first word of every 4 KiB page
from 2 MiB to the end of RAM, over and over (so precopy cannot converge, and
the destination's guest faults on every page it lacks). RAM is a file in
/dev/shm filled with random bytes (shared memory: userfaultfd can guard it,
and both sides' memory can be read afterwards). Both sides get postcopy-ram
and postcopy-blocktime, and postcopy-preempt where this QEMU has it (QEMU's
best postcopy configuration); the source switches with migrate-start-postcopy
after its first pass. The check: with the destination stopped, every page is
the source's at the switch, except that a dirtied page's counter may have
grown since (the guest ran on over there). Prints one JSON line in the form
bench/compare.sh reads:

  bench/qemu-postcopy.py [--transport tcp|rdma] --host ADDR --ram MiB [--name NAME]
                         [--no-preempt]

Over rdma the row says what QEMU did with the request (this QEMU may refuse
postcopy there, as QEMU 10.0 does by its capability check, or fail on the way).
"""
import argparse
import json
import os
import signal
import shutil
import sys
import tempfile
import time

from qemu_qmp import RAM_DIR, Qmp, children_cpu, qemu, ram_files, wait_status

DIRTY_FROM = 2 << 20  # below: BIOS and the boot sector, which the guest only reads
PAGE = 4096

# as --32 of (loaded at 0x7c00 by the BIOS, run in real mode):
#   cli; inb $0x92,%al; orb $2,%al; outb %al,$0x92          A20 on
#   lgdtl %cs:gdtd; cr0 |= 1; ljmpl $0x08,$pm32             flat 32-bit segments
#   pm32: ds = es = ss = 0x10
#   outer: movl $FROM,%ebx
#   inner: incl (%ebx); addl $4096,%ebx; cmpl $END,%ebx; jb inner; jmp outer
#   gdt: null, code 0x00cf9a000000ffff, data 0x00cf92000000ffff; gdtd: .word 23, .long gdt
BOOT = bytes.fromhex(
    "fae4920c02e6922e660f0116587c0f20c00c010f22c066ea1e7c00000800"
    "66b810008ed88ec08ed0bb00002000ff0381c3001000"
    "0081fb000000 0472f0ebe990"
    "0000000000000000ffff0000009acf00ffff00000092cf00"
    "1700407c0000".replace(" ", ""))
BOOT_FROM, BOOT_END = 0x29, 0x37  # the imm32s of movl $FROM and cmpl $END


def boot_image(path, ram_bytes):
    code = bytearray(BOOT)
    code[BOOT_FROM:BOOT_FROM + 4] = DIRTY_FROM.to_bytes(4, "little")
    code[BOOT_END:BOOT_END + 4] = ram_bytes.to_bytes(4, "little")
    sector = bytes(code).ljust(510, b"\0") + b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector.ljust(1 << 20, b"\0"))


def word(path, off):
    with open(path, "rb") as f:
        f.seek(off)
        return int.from_bytes(f.read(4), "little")


def verify(src_mem, dst_mem):
    """(ok, pages whose counter grew over there, why)."""
    grew = 0
    with open(src_mem, "rb") as s, open(dst_mem, "rb") as d:
        off = 0
        while True:
            a, b = s.read(PAGE), d.read(PAGE)
            if not a:
                return (not b, grew, "" if not b else "sizes differ")
            if off < DIRTY_FROM:
                # BIOS-time memory: the destination's guest never writes it after the switch.
                if a != b:
                    return False, grew, f"page at {off:#x} differs"
            else:
                if a[4:] != b[4:]:
                    return False, grew, f"page at {off:#x} differs past its counter"
                delta = (int.from_bytes(b[:4], "little") - int.from_bytes(a[:4], "little")) % (1 << 32)
                if delta >= 1 << 31:
                    return False, grew, f"page at {off:#x}: counter went back"
                grew += delta > 0
            off += PAGE


def caps(q, names):
    q.cmd("migrate-set-capabilities",
          capabilities=[{"capability": n, "state": True} for n in names])


def main():
    # Killed: unwind, so the QEMUs and their RAM files in /dev/shm go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", default="tcp", choices=("tcp", "rdma"))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ram", type=int, default=64)
    ap.add_argument("--name", default="qemu tcp postcopy")
    ap.add_argument("--no-preempt", action="store_true")
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    port = a.port or (20000 + os.getpid() % 20000)
    row = {"name": a.name, "transport": a.transport, "status": "failed", "total_time_ms": 0,
           "setup_time_ms": 0, "downtime_ms": 0, "bytes_sent": 0, "src_cpu_s": 0.0,
           "verified": False, "error": "", "postcopy": {}}
    procs = []
    step = "setup"
    d = tempfile.mkdtemp(prefix="rdmig-qemu-pc-", dir=RAM_DIR)
    try:
        src_mem, dst_mem = ram_files(d, a.ram)
        for side in ("src", "dst"):
            boot_image(os.path.join(d, side + ".img"), a.ram << 20)
        host = f"[{a.host}]" if ":" in a.host else a.host
        uri = f"{a.transport}:{host}:{port}"
        drive = lambda side: ["-drive", f"file={os.path.join(d, side + '.img')},format=raw,if=ide"]
        step = "starting the QEMUs"
        dst = qemu(a.ram, dst_mem, os.path.join(d, "dst.qmp"), drive("dst") + ["-incoming", "defer"],
                   paused=False)  # runs once the switch comes
        procs.append(dst)
        dq = Qmp(os.path.join(d, "dst.qmp"))
        src = qemu(a.ram, src_mem, os.path.join(d, "src.qmp"), drive("src"), paused=False)
        procs.append(src)
        sq = Qmp(os.path.join(d, "src.qmp"))
        # The guest is in its loop once the first dirtied page's counter moves.
        first, deadline = word(src_mem, DIRTY_FROM), time.time() + 60
        while word(src_mem, DIRTY_FROM) == first:
            if time.time() > deadline:
                raise RuntimeError("the guest never started dirtying its RAM")
            time.sleep(0.05)
        step = "setting the capabilities"
        names = ["postcopy-ram"]
        if not a.no_preempt:
            names.append("postcopy-preempt")
        try:
            caps(sq, names)
            caps(dq, names + ["postcopy-blocktime"])
        except RuntimeError:
            names = ["postcopy-ram"]  # a QEMU without preempt (or not on this transport)
            caps(sq, names)
            caps(dq, names + ["postcopy-blocktime"])
        row["qemu_caps"] = names
        sq.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40, "downtime-limit": 1})
        step = "migrate-incoming and migrate"
        dq.cmd("migrate-incoming", uri=uri)
        sq.cmd("migrate", uri=uri)
        # After the first pass, as rdmig-bench --postcopy 1 does.
        q, deadline = {}, time.time() + a.timeout
        while time.time() < deadline:
            q = sq.cmd("query-migrate")
            st = q.get("status")
            if st not in ("setup", "active") or q.get("ram", {}).get("dirty-sync-count", 0) >= 2:
                break
            time.sleep(0.01)
        step = "migrate-start-postcopy"
        if q.get("status") == "active":
            sq.cmd("migrate-start-postcopy")
        step = "waiting for the end"
        q = wait_status(sq, ("completed", "failed", "cancelled"), a.timeout)
        if q.get("status") not in ("completed", "failed", "cancelled"):
            row["error"] = f"still {q.get('status')} after {a.timeout} s"
        dqs = wait_status(dq, ("completed", "failed"), 60)
        ram = q.get("ram", {})
        row["status"] = q.get("status", "unknown")
        row["dest_status"] = dqs.get("status", "unknown")
        row["total_time_ms"] = q.get("total-time", 0)
        row["setup_time_ms"] = q.get("setup-time", 0)
        row["downtime_ms"] = q.get("downtime", 0)
        row["bytes_sent"] = ram.get("transferred", 0)
        row["error"] = q.get("error-desc", row["error"])
        requests = ram.get("postcopy-requests", 0)
        pages_after = ram.get("postcopy-bytes", 0) // PAGE
        row["postcopy"] = {
            "requests": requests,
            "pulled": requests,  # QEMU answers each request with the page asked for
            "pushed": max(pages_after - requests, 0),
            "blocktime_ms": dqs.get("postcopy-blocktime", 0),
            "vcpu_blocktime_ms": dqs.get("postcopy-vcpu-blocktime", []),
        }
        step = "checking memory"
        time.sleep(0.5)  # the guest runs on over there: its writes show in the check
        dq.cmd("stop")
        row["verified"], row["pages_written_at_destination"], why = verify(src_mem, dst_mem)
        if why:
            row["error"] = (row["error"] + "; " if row["error"] else "") + "memory: " + why
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        row["src_cpu_s"] = round(children_cpu(), 3)  # both QEMUs: no per-process split
    except Exception as e:  # report, never hang
        time.sleep(0.5)  # a QEMU that closed its QMP socket is on its way out
        row["error"] = f"{step}: {e}" + "".join(
            f"; {side} QEMU exited {p.returncode}: {p.stderr.read()[-300:].strip()}"
            for side, p in zip(("destination", "source"), procs) if p.poll() is not None)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(row))
    return 0 if row["status"] == "completed" and row["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
