#!/usr/bin/env bash
# Side-by-side throughput on one link, in one run: the link's limit
# (ib_write_bw -s 1048576), rdmig over rdma (on demand and pin-all, 1 and 4
# queues), QEMU's own rdma and tcp migration of a paused guest of the same size
# (bench/qemu-migrate.py), and rdmig over tcp, each moving the same random RAM
# (--host-tcp also with TLS, PSK and x509, when psktool and certtool are there).
# Prints one table with each one's ratio to ib_write_bw and to QEMU, and the
# raw results as JSON lines.
#
#   bench/compare.sh [--ram MiB] [--dirty MiB/s] [--runs N]   the rdma link
#   bench/compare.sh --host-tcp [--ram MiB]                   tcp on loopback here
#   bench/compare.sh --postcopy [--ram MiB] [--dirty MiB/s] [--runs N]
#   any form: --plot FILE.png draws MB/s per configuration, labelled x link / x qemu
#
# QEMU is given its best configuration: RAM in shared memory (/dev/shm, not a
# file on disk), max-bandwidth raised, multifd with as many channels as
# rdmig's tcp rows; "x qemu" is against the fastest QEMU row of the run.
#
# --postcopy: the same guest, dirtying and read by --dest-readers 1 at the
# destination, switched to postcopy after its first pass: rdmig over rdma (the
# destination READs what it lacks, on demand and pin-all) and over tcp (the
# source pushes, requests on a socket of their own), side by side: total time,
# the VM's pause, pages pulled and pushed, blocktime and fault latency; then
# QEMU's own postcopy over tcp (postcopy-preempt on) as the reference, with a
# running guest that dirties every page without end (bench/qemu-postcopy.py),
# and what QEMU's rdma does when asked for postcopy.
#
# Without an RDMA device here, the first form runs itself inside the soft-RoCE
# VM (tests/vm/rxe-run): every figure then comes from the same VM boot.
set -euo pipefail
cd "$(dirname "$0")/.."

ram=64 dirty=0 runs=1 hosttcp= postcopy= plot=
while [ $# -gt 0 ]; do
	case "$1" in
	--host-tcp) hosttcp=1; shift ;;
	--postcopy) postcopy=1; shift ;;
	--ram) ram=$2; shift 2 ;;
	--dirty) dirty=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--plot) plot=$2; shift 2 ;;
	*) echo "usage: bench/compare.sh [--host-tcp | --postcopy] [--ram MiB] [--dirty MiB/s] [--runs N] [--plot FILE.png]" >&2; exit 2 ;;
	esac
done

bench=build/bench/rdmig-bench
if [ ! -x "$bench" ]; then
	./scripts/build >/dev/null
fi

if [ -z "$hosttcp" ] && [ -z "${RDMIG_IN_VM:-}" ] && ! ibv_devices 2>/dev/null | awk 'NR > 2' | grep -q .; then
	if [ -z "$plot" ]; then
		exec tests/vm/rxe-run bench/compare.sh --ram "$ram" --dirty "$dirty" --runs "$runs" \
			${postcopy:+--postcopy}
	fi
	# The VM's files are gone after it: the plot is drawn into its export and copied back.
	RDMIG_VM_OUTDIR=$(cd "$(dirname "$plot")" && pwd)
	export RDMIG_VM_OUTDIR
	exec tests/vm/rxe-run bash -c 'bench/compare.sh --ram "$1" --dirty "$2" --runs "$3" $4 \
		--plot "$RDMIG_VM_OUT/$5"' _ "$ram" "$dirty" "$runs" "${postcopy:+--postcopy}" \
		"$(basename "$plot")"
fi

addr=${RDMIG_RDMA_ADDR:-$( (ip -4 -o addr show dev dummy0 2>/dev/null || true) | awk '{print $4}' | cut -d/ -f1)}
if [ -n "$hosttcp" ]; then
	addr=127.0.0.1
fi
dev=${RDMIG_RDMA_DEV:-}
if [ -z "$hosttcp" ] && [ -z "$dev" ]; then
	dev=$(ibv_devices | awk 'NR > 2 {print $1; exit}')
fi
out=$(mktemp)
tls=$(mktemp -d)
trap 'rm -rf "$out" "$tls"' EXIT

# TLS credentials for the tcp+tls rows: a PSK and a CA with server and client certificates.
make_tls() {
	command -v psktool >/dev/null && command -v certtool >/dev/null || return 1
	psktool -u rdmig -p "$tls/keys.psk" >/dev/null 2>&1 || return 1
	printf 'cn = "compare CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$tls/ca.tmpl"
	printf 'cn = "%s"\nip_address = "%s"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n' \
		"$addr" "$addr" >"$tls/server.tmpl"
	printf 'cn = "source"\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 2\n' >"$tls/client.tmpl"
	local k
	for k in ca server client; do
		certtool --generate-privkey --key-type=ecdsa --outfile "$tls/$k-key.pem" 2>/dev/null || return 1
	done
	certtool --generate-self-signed --load-privkey "$tls/ca-key.pem" --template "$tls/ca.tmpl" \
		--outfile "$tls/ca-cert.pem" 2>/dev/null || return 1
	for k in server client; do
		certtool --generate-certificate --load-privkey "$tls/$k-key.pem" \
			--load-ca-certificate "$tls/ca-cert.pem" --load-ca-privkey "$tls/ca-key.pem" \
			--template "$tls/$k.tmpl" --outfile "$tls/$k-cert.pem" 2>/dev/null || return 1
	done
}
havetls=
if [ -n "$hosttcp" ] && make_tls; then
	havetls=1
fi

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

# transport, then for tcp a multifd channel count (0: none)
qemu_row() {
	local mf=${2:-0} name="qemu $1"
	[ "$mf" = 0 ] || name="qemu $1 multifd ${mf}ch"
	python3 bench/qemu-migrate.py --transport "$1" --host "$addr" --ram "$ram" --multifd "$mf" \
		--name "$name" >>"$out" || true
}

if [ -n "$postcopy" ]; then
	[ "$dirty" != 0 ] || dirty=256
	pc() {
		local name=$1
		shift
		local j
		j=$("$bench" --ram "$ram" --dirty-rate "$dirty" --zero-pct 0 --text-pct 0 --json \
			--postcopy 1 --downtime-limit 1 --dest-readers 1 --host "$addr" "$@" || true)
		echo "${j%\}}, \"name\": \"$name\"}" >>"$out"
	}
	for _ in $(seq "$runs"); do
		pc "rdmig rdma READ on-demand" --transport rdma --channels 2
		pc "rdmig rdma READ pin-all" --transport rdma --channels 2 --pin-all
		pc "rdmig tcp push+requests" --transport tcp --channels 2
		python3 bench/qemu-postcopy.py --transport tcp --host "$addr" --ram "$ram" \
			--name "qemu tcp postcopy" >>"$out" || true
		python3 bench/qemu-postcopy.py --transport rdma --host "$addr" --ram "$ram" \
			--timeout 120 --no-preempt --name "qemu rdma postcopy" >>"$out" || true
	done
	python3 - "$out" "$ram" "$dirty" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"bench/compare.sh --postcopy: {sys.argv[2]} MiB of random RAM, guest dirtying "
      f"{sys.argv[3]} MiB/s, postcopy after the first pass, one destination reader")
print(f"{'what':26} {'total ms':>9} {'down ms':>8} {'pulled':>7} {'pushed':>7} {'block ms':>9} "
      f"{'p50 us':>7} {'p99 us':>7} {'max us':>7}  verified")
def us(p, k):
    # QEMU reports no fault latency: a dash, not a zero.
    return str(p[k]) if k in p else "-"

for r in rows:
    p = r.get("postcopy", {})
    if r.get("status") != "completed":
        print(f"{r['name']:26} {r.get('status', '?')}: {r.get('error', '')[:150]}")
        continue
    print(f"{r['name']:26} {r.get('total_time_ms', 0):>9} {r.get('downtime_ms', 0):>8} "
          f"{p.get('pulled', 0):>7} {p.get('pushed', 0):>7} {p.get('blocktime_ms', 0):>9} "
          f"{us(p, 'latency_p50_us'):>7} {us(p, 'latency_p99_us'):>7} "
          f"{us(p, 'latency_max_us'):>7}  {'yes' if r.get('verified') else 'NO'}")
print("raw:")
for r in rows:
    print(json.dumps(r))
EOF
	exit 0
fi

for _ in $(seq "$runs"); do
	if [ -n "$hosttcp" ]; then
		qemu_row tcp
		qemu_row tcp 2
		rdmig "rdmig tcp 1ch" --transport tcp --host "$addr" --channels 1
		rdmig "rdmig tcp 2ch" --transport tcp --host "$addr" --channels 2
		if [ -n "$havetls" ]; then
			rdmig "rdmig tcp+tls psk 2ch" --transport tcp --host "$addr" --channels 2 \
				--tls-psk "$tls/keys.psk"
			rdmig "rdmig tcp+tls x509 2ch" --transport tcp --host "$addr" --channels 2 \
				--tls-x509 "$tls"
		fi
		continue
	fi
	link
	qemu_row rdma
	rdmig "rdmig rdma on-demand 1q" --transport rdma --host "$addr" --channels 1
	rdmig "rdmig rdma on-demand 4q" --transport rdma --host "$addr" --channels 4
	rdmig "rdmig rdma pin-all 1q" --transport rdma --host "$addr" --channels 1 --pin-all
	rdmig "rdmig rdma pin-all 4q" --transport rdma --host "$addr" --channels 4 --pin-all
	qemu_row tcp
	qemu_row tcp 2
	rdmig "rdmig tcp 2ch" --transport tcp --host "$addr" --channels 2
done

python3 - "$out" "$ram" "$dirty" "$plot" <<'EOF'
import json, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def bps(r):
    if "bytes_per_s" in r:
        return r["bytes_per_s"]
    ms = r["total_time_ms"] - r["setup_time_ms"]
    return r["bytes_sent"] / (ms / 1000) if ms > 0 and r["status"] == "completed" else 0

def mean(name):
    v = [bps(r) for r in rows if r["name"] == name]
    return sum(v) / len(v) if v else 0

link = mean("ib_write_bw -s 1048576")
# QEMU's best configuration on this link (rdma, tcp or tcp multifd) is the reference.
names = list(dict.fromkeys(r["name"] for r in rows))
qnames = [n for n in names if n.startswith("qemu")]
qname = max(qnames, key=mean) if qnames else ""
qemu = mean(qname) if qname else 0
print(f"bench/compare.sh: {sys.argv[2]} MiB of random RAM, guest dirtying {sys.argv[3]} MiB/s "
      f"(MB = 10^6 bytes; ratios against the same run's ib_write_bw and {qname})")
print(f"{'what':26} {'MB/s':>7} {'x link':>7} {'x qemu':>7} {'total ms':>9} {'setup ms':>9} "
      f"{'down ms':>8} {'cpu s':>6}  verified")
for r in rows:
    b = bps(r)
    tl = f"{b / link:.2f}" if link else "-"
    tq = f"{b / qemu:.2f}" if qemu else "-"
    if "bytes_per_s" in r:
        tot = setup = down = cpu = ""
        ok = "-"
    else:
        tot, setup, down = r["total_time_ms"], r["setup_time_ms"], r["downtime_ms"]
        cpu, ok = f'{r["src_cpu_s"]:.2f}', "yes" if r["verified"] else "NO"
    print(f"{r['name']:26} {b / 1e6:7.1f} {tl:>7} {tq:>7} {tot!s:>9} {setup!s:>9} {down!s:>8} "
          f"{cpu:>6}  {ok}")
print("raw:")
for r in rows:
    print(json.dumps(r))
if sys.argv[4]:
    data = [(n, mean(n)) for n in names]
    script = ["set terminal pngcairo size 1000,460 noenhanced", f"set output '{sys.argv[4]}'",
              f"set title 'bench/compare.sh: {sys.argv[2]} MiB, guest dirtying {sys.argv[3]} MiB/s "
              f"(mean of the runs; labels: x link / x {qname})'",
              "set style data histograms", "set style fill solid 0.7", "set boxwidth 0.8",
              "set ylabel 'MB/s'", "set yrange [0:*]", "set xtics rotate by -30 left",
              "set key off", "set grid ytics", "set bmargin 7",
              "plot '-' using 2:xtic(1), '' using 0:2:3 with labels offset 0,0.8"]
    rows_a = [f'"{n}" {v / 1e6:.2f}' for n, v in data]
    lab = [f'"{n}" {v / 1e6:.2f} "{(v / link if link else 0):.2f} / {(v / qemu if qemu else 0):.2f}"'
           for n, v in data]
    subprocess.run(["gnuplot"], input="\n".join(script + rows_a + ["e"] + lab + ["e"]) + "\n",
                   text=True, check=True)
    print(f"plot: {sys.argv[4]}")
EOF
