#!/bin/sh
# Every function the shared library exports has a section 3 page (or a .so
# link to one) whose NAME line lists it; every installed page renders without
# a groff warning. Usage: man_pages.sh LIBRDMIG.so MANDIR
set -eu
lib=$1 man=$2
syms=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u)
[ -n "$syms" ] || { echo "no exported functions found in $lib" >&2; exit 1; }
bad=0
for s in $syms; do
	page=$man/man3/$s.3
	if [ ! -f "$page" ]; then
		echo "$s: no page $page" >&2
		bad=1
		continue
	fi
	target=$(sed -n 's/^\.so //p' "$page")
	[ -z "$target" ] || page=$man/$target
	if [ ! -f "$page" ]; then
		echo "$s: $man/man3/$s.3 links to a missing $target" >&2
		bad=1
	elif ! sed -n '/^\.SH NAME/,/^\.SH/p' "$page" | grep -q "\\b$s\\b"; then
		echo "$s: the NAME section of $page does not list it" >&2
		bad=1
	fi
done
if command -v groff >/dev/null; then
	for page in "$man"/man*/*.[137]; do
		grep -q '^\.so ' "$page" && continue
		out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1) || true
		[ -z "$out" ] || { echo "$page: $out" >&2; bad=1; }
	done
fi
[ $bad -eq 0 ] && echo "$(echo "$syms" | wc -l) exported functions, each with a page"
exit $bad
