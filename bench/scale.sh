#!/usr/bin/env bash
# Scale on this host, tcp on loopback: guests of 1, 2, 4 and 8 GiB (random
# RAM, idle), rdmig over 2 channels without and with the destination's
# prefault, and QEMU (a paused guest in shared memory, multifd over 2
# channels: bench/qemu-migrate.py) where memory holds both of its copies.
# Per row: total and transfer time (after setup), the destination's first
# touch when taken apart (prefault), seconds per GiB, and source and
# destination CPU-seconds per GiB (QEMU: both processes together).
#
#   bench/scale.sh [--sizes "1 2 4 8"]
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="1 2 4 8"
while [ $# -gt 0 ]; do
	case "$1" in
	--sizes) sizes=$2; shift 2 ;;
	*) echo "usage: bench/scale.sh [--sizes \"1 2 4 8\"]" >&2; exit 2 ;;
	esac
done
bench=build/bench/rdmig-bench
[ -x "$bench" ] || ./scripts/build >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# KiB of memory free for QEMU's two copies (tmpfs reports its size, not what RAM can hold).
mem_free() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }

for g in $sizes; do
	mib=$((g * 1024))
	for pf in "" --prefault; do
		j=$("$bench" --json --ram "$mib" --dirty-rate 0 --zero-pct 0 --text-pct 0 \
			--transport tcp --channels 2 --timeout 900 $pf 2>/dev/null || true)
		[ -n "$j" ] || j='{"status": "no report"}'
		echo "${j%\}}, \"name\": \"rdmig tcp 2ch${pf:+ prefault}\", \"gib\": $g}" >>"$out"
		tail -n 1 "$out" >&2
	done
	if [ "$(mem_free)" -gt $((2 * mib * 1024 + 2097152)) ] && [ -d /dev/shm ]; then
		j=$(python3 bench/qemu-migrate.py --transport tcp --ram "$mib" --multifd 2 \
			--name "qemu tcp multifd 2ch" --timeout 900 || true)
		[ -n "$j" ] || j='{"name": "qemu tcp multifd 2ch", "status": "no report"}'
		echo "${j%\}}, \"gib\": $g}" >>"$out"
	else
		echo "{\"name\": \"qemu tcp multifd 2ch\", \"gib\": $g, \"status\": \"skipped: not enough memory for two copies in /dev/shm\"}" >>"$out"
	fi
done

python3 - "$out" <<'PY'
import json, sys
rows = []
for l in open(sys.argv[1]):
    try:
        rows.append(json.loads(l))
    except ValueError:
        print("unreadable row:", l.strip()[:200])
print("bench/scale.sh: tcp on loopback, 2 channels, random RAM, idle guest")
print(f"{'GiB':>3} {'what':24} {'total s':>8} {'xfer s':>7} {'prefault s':>10} {'s/GiB':>6} "
      f"{'MiB/s':>6} {'src cpu/GiB':>11} {'dst cpu/GiB':>11}  verified")
for r in rows:
    g = r["gib"]
    if r.get("status") != "completed":
        print(f"{g:>3} {r['name']:24} {r.get('status')}: {r.get('error', '')[:80]}")
        continue
    tot = r["total_time_ms"] / 1000
    xfer = (r["total_time_ms"] - r["setup_time_ms"]) / 1000
    pf = r.get("prefault_ms", 0) / 1000
    src, dst = r.get("src_cpu_s", 0), r.get("dest_cpu_s")
    dst_s = f"{dst / g:11.2f}" if dst else f"{'(in src)':>11}"
    print(f"{g:>3} {r['name']:24} {tot:8.2f} {xfer:7.2f} {pf:10.2f} {tot / g:6.2f} "
          f"{g * 1024 / xfer:6.0f} {src / g:11.2f} {dst_s}  {'yes' if r.get('verified') else 'NO'}")
print("raw:")
for r in rows:
    print(json.dumps(r))
PY
