#!/bin/sh
# layers.sh LIB.a DIR...: for each source directory DIR (e.g. transport/rdma),
# the call graph between its files, read from the objects in LIB.a (nm), has
# no file pair that calls each other both ways (directly or round a cycle).
# Prints the graph; exits 1 with the cycle when there is one.
set -eu
lib=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "object defined|undefined symbol" for every object of the archive.
nm -A -P "$lib" 2>/dev/null | awk '
	{ o = $1; sub(/\]:$/, "", o); sub(/^.*[\/\[]/, "", o) }
	$3 == "T" { print o, "D", $2 } # functions: the call graph
	$3 == "U" { print o, "U", $2 }' >"$tmp/syms"
[ -s "$tmp/syms" ] || { echo "layers: no symbols read from $lib" >&2; exit 2; }
status=0
for dir in "$@"; do
	pre=$(echo "$dir" | tr / _)_
	awk -v pre="$pre" '
		index($1, pre) == 1 { f = substr($1, length(pre) + 1); sub(/\.c\.o$/, "", f) }
		index($1, pre) != 1 { next }
		$2 == "D" { def[$3] = f }
		$2 == "U" { n++; uf[n] = f; us[n] = $3 }
		END {
			for (i = 1; i <= n; i++)
				if ((us[i] in def) && def[us[i]] != uf[i])
					print uf[i], def[us[i]]
		}' "$tmp/syms" | sort -u >"$tmp/edges"
	[ -s "$tmp/edges" ] || { echo "layers: no calls found between files of $dir" >&2; exit 2; }
	echo "$dir:"
	awk '{ to[$1] = to[$1] " " $2 } END { for (f in to) print "  " f ".c ->" to[f] }' \
		"$tmp/edges" | sort
	# tsort reports a cycle (a pair both ways is the shortest) on stderr.
	if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/cycle"; then
		echo "layers: $dir has files calling each other:" >&2
		cat "$tmp/cycle" >&2
		status=1
	fi
done
exit $status
