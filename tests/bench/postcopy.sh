#!/bin/sh
# rdmig-bench --postcopy end to end over tcp: a guest dirtying faster than the
# link completes through postcopy, memory verified by CRC32 on the bench's
# side, and the destination's readers made it pull pages on demand.
# With "recover" (a fault-injection build): the link is cut in the push and
# --recover brings it back, once, with the same checks.
set -eu
bench=$1
mode=${2:-}
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ]; then
	echo "skip: userfaultfd needs root or vm.unprivileged_userfaultfd=1"
	exit 77
fi
ram=32 extra=""
# 64 MiB: a 32 MiB block, whose received map takes more than a small control frame.
[ "$mode" = recover ] && ram=64 extra="--postcopy-cut 4 --recover"
# shellcheck disable=SC2086 # extra is a list of options
out=$("$bench" --ram "$ram" --dirty-rate 96 --max-bandwidth 24 --downtime-limit 5 --postcopy 2 \
	--dest-readers 1 --json $extra)
echo "$out"
echo "$out" | grep -q '"verified": true' || { echo "FAIL: memory not verified"; exit 1; }
echo "$out" | grep -q '"status": "completed", "dest_status": "completed"' ||
	{ echo "FAIL: not completed on both sides"; exit 1; }
req=$(echo "$out" | sed -n 's/.*"postcopy": {"requests": \([0-9]*\),.*/\1/p')
[ -n "$req" ] && [ "$req" -gt 0 ] || { echo "FAIL: no page was pulled on demand ($req)"; exit 1; }
echo "ok: $req page requests"
if [ "$mode" = recover ]; then
	rec=$(echo "$out" | sed -n 's/.*"recoveries": \([0-9]*\),.*/\1/p')
	[ "$rec" = 1 ] || { echo "FAIL: expected one recovery, got '$rec'"; exit 1; }
	echo "ok: recovered once"
fi
