#!/bin/sh
# rdmig-bench --postcopy end to end over tcp: a guest dirtying faster than the
# link completes through postcopy, memory verified by CRC32 on the bench's
# side, and the destination's readers made it pull pages on demand.
set -eu
bench=$1
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ]; then
	echo "skip: userfaultfd needs root or vm.unprivileged_userfaultfd=1"
	exit 77
fi
out=$("$bench" --ram 32 --dirty-rate 96 --max-bandwidth 24 --downtime-limit 5 --postcopy 2 \
	--dest-readers 1 --json)
echo "$out"
echo "$out" | grep -q '"verified": true' || { echo "FAIL: memory not verified"; exit 1; }
echo "$out" | grep -q '"status": "completed", "dest_status": "completed"' ||
	{ echo "FAIL: not completed on both sides"; exit 1; }
req=$(echo "$out" | sed -n 's/.*"postcopy": {"requests": \([0-9]*\),.*/\1/p')
[ -n "$req" ] && [ "$req" -gt 0 ] || { echo "FAIL: no page was pulled on demand ($req)"; exit 1; }
echo "ok: $req page requests"
