# SPDX-License-Identifier: MIT
"""QMP and the QEMU command line shared by bench/qemu-migrate.py and
bench/qemu-postcopy.py: a TCG pc machine whose RAM is a file (so both sides'
memory can be compared afterwards), no display, a QMP socket."""
import json
import os
import resource
import socket
import subprocess
import time


class Qmp:
    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']['desc']}")


def qemu(ram_mib, mem_path, qmp_path, extra, paused=True):
    exe = os.environ.get("QEMU", "qemu-system-x86_64")
    args = [exe, "-machine", "pc,memory-backend=mem", "-accel", "tcg",
            "-object", f"memory-backend-file,id=mem,size={ram_mib}M,mem-path={mem_path},share=on",
            "-m", f"{ram_mib}M", "-nodefaults", "-display", "none",
            "-qmp", f"unix:{qmp_path},server=on,wait=off"] + (["-S"] if paused else []) + extra
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


# Where guest RAM files go: shared memory (as fast as a plain RAM backend), else the default.
RAM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def ram_files(d, ram_mib):
    """src.ram of random bytes (no zero pages) and an empty dst.ram in d."""
    src, dst = os.path.join(d, "src.ram"), os.path.join(d, "dst.ram")
    with open(src, "wb") as f:
        for _ in range(ram_mib):
            f.write(os.urandom(1 << 20))
    with open(dst, "wb") as f:
        f.truncate(ram_mib << 20)
    return src, dst


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_status(q, statuses, timeout, poll=0.05):
    """query-migrate until its status is one of statuses (or the time is up)."""
    deadline = time.time() + timeout
    while True:
        r = q.cmd("query-migrate")
        if r.get("status") in statuses or time.time() > deadline:
            return r
        time.sleep(poll)
