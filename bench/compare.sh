#!/usr/bin/env bash
# Side-by-side throughput on one link, in one run: the link's limit
# (ib_write_bw -s 1048576), rdmig over rdma (on demand and pin-all, 1 and 4
# queues) and rdmig over tcp, each moving the same random RAM. Prints one table
# with the ratio of each to ib_write_bw, and the raw results as JSON lines.
#
#   bench/compare.sh [--ram MiB] [--dirty MiB/s] [--runs N]
#
# Without an RDMA device here, it runs itself inside the soft-RoCE VM
# (tests/vm/rxe-run): every figure then comes from the same VM boot.
set -euo pipefail
cd "$(dirname "$0")/.."

ram=64 dirty=0 runs=1
while [ $# -gt 0 ]; do
	case "$1" in
	--ram) ram=$2; shift 2 ;;
	--dirty) dirty=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	*) echo "usage: bench/compare.sh [--ram MiB] [--dirty MiB/s] [--runs N]" >&2; exit 2 ;;
	esac
done

bench=build/bench/rdmig-bench
if [ ! -x "$bench" ]; then
	./scripts/build >/dev/null
fi

if [ -z "${RDMIG_IN_VM:-}" ] && ! ibv_devices 2>/dev/null | awk 'NR > 2' | grep -q .; then
	exec tests/vm/rxe-run bench/compare.sh --ram "$ram" --dirty "$dirty" --runs "$runs"
fi

addr=${RDMIG_RDMA_ADDR:-$(ip -4 -o addr show dev dummy0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)}
dev=${RDMIG_RDMA_DEV:-$(ibv_devices | awk 'NR>2{print $1; exit}')}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

link() {
	# perftest prints Gb/s with --report_gbits: no doubt about MB units.
	ib_write_bw -d "$dev" -s 1048576 -n 200 --report_gbits >/dev/null 2>&1 &
	local srv=$!
	sleep 2
	local gbps
	gbps=$(ib_write_bw -d "$dev" -s 1048576 -n 200 --report_gbits "$addr" 2>/dev/null |
		awk '$1 == 1048576 {print $4}')
	wait "$srv" || true
	echo "{\"name\": \"ib_write_bw -s 1048576\", \"bytes_per_s\": $(awk -v g="${gbps:-0}" 'BEGIN{printf "%.0f", g * 1e9 / 8}')}" >>"$out"
}

rdmig() {
	local name=$1
	shift
	local j
	j=$("$bench" --ram "$ram" --dirty-rate "$dirty" --zero-pct 0 --text-pct 0 --json "$@" || true)
	echo "${j%\}}, \"name\": \"$name\"}" >>"$out"
}

for _ in $(seq "$runs"); do
	link
	rdmig "rdmig rdma on-demand 1q" --transport rdma --host "$addr" --channels 1
	rdmig "rdmig rdma on-demand 4q" --transport rdma --host "$addr" --channels 4
	rdmig "rdmig rdma pin-all 1q" --transport rdma --host "$addr" --channels 1 --pin-all
	rdmig "rdmig rdma pin-all 4q" --transport rdma --host "$addr" --channels 4 --pin-all
	rdmig "rdmig tcp 2ch" --transport tcp --host "$addr" --channels 2
done

python3 - "$out" "$ram" "$dirty" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
link = [r["bytes_per_s"] for r in rows if "bytes_per_s" in r]
limit = sum(link) / len(link) if link else 0
print(f"bench/compare.sh: {sys.argv[2]} MiB of random RAM, guest dirtying {sys.argv[3]} MiB/s")
print(f"{'what':28} {'MB/s':>8} {'x link':>7} {'total ms':>9} {'setup ms':>9} {'down ms':>8} {'cpu src s':>9}  ok")
agg = {}
for r in rows:
    if "bytes_per_s" in r:
        bps, tot, setup, down, cpu, ok = r["bytes_per_s"], "", "", "", "", "yes"
    else:
        ms = r["total_time_ms"] - r["setup_time_ms"]
        bps = r["bytes_sent"] / (ms / 1000) if ms > 0 and r["status"] == "completed" else 0
        tot, setup, down = r["total_time_ms"], r["setup_time_ms"], r["downtime_ms"]
        cpu, ok = f'{r["src_cpu_s"]:.2f}', "yes" if r["verified"] else "NO"
    ratio = f"{bps / limit:.2f}" if limit else "-"
    print(f"{r['name']:28} {bps / 1e6:8.1f} {ratio:>7} {tot!s:>9} {setup!s:>9} {down!s:>8} {cpu:>9}  {ok}")
print("raw:")
for r in rows:
    print(json.dumps(r))
EOF
