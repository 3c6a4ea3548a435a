#!/usr/bin/env bash
# compare.sh: time dfbuild against tar on the same large build context.
#
#   testdata/bench/compare.sh [SIZE]        SIZE like 2GiB (default), 512MiB, 64MiB
#
# It generates a deterministic context of SIZE bytes of file contents (many small
# files, some medium, a few large: testdata/bench/gencontext), builds dfbuild, and runs
# each of these RUNS times (default 3), alternately, from a warm page cache:
#
#   A: dfbuild -f testdata/bench/Dockerfile -o out.tar CONTEXT     (FROM scratch, COPY . /data/)
#   B: tar -cf - CONTEXT | tee out.tar | sha256sum
#
# Each run is measured with /usr/bin/time (wall seconds, peak RSS of the largest
# process), after a sync that is not timed. dfbuild fsyncs the archive before renaming
# it into place; the tar pipeline leaves its output to the kernel's write-back. It
# prints the medians and the ratio A/B next to the targets (wall time within 1.5x of
# B, peak RSS under 100 MiB for 2 GiB). It fails only when a command fails, never on
# a missed target.
#
# Environment: BENCH_SIZE (instead of the argument), RUNS, BENCH_DIR (a parent
# directory for the scratch files; default $TMPDIR or /tmp). Needs about 3 x SIZE of
# free disk. Everything it writes is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
size=${1:-${BENCH_SIZE:-2GiB}}
runs=${RUNS:-3}

if [[ ! -x /usr/bin/time ]]; then
	echo "installing GNU time (/usr/bin/time)" >&2
	if [[ $(id -u) -eq 0 ]]; then
		apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
	else
		sudo apt-get install -y -qq time >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq time >/dev/null; }
	fi
fi

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/dfbuild-bench.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "scratch directory: $work"
df -h "$work" | tail -1

(cd "$repo" && go build -o "$work/dfbuild" ./cmd/dfbuild)
(cd "$repo" && go build -o "$work/gencontext" ./testdata/bench/gencontext)

ctx="$work/context"
echo "generating $size in $ctx"
"$work/gencontext" -size "$size" -seed 1 "$ctx"
files=$(find "$ctx" -type f | wc -l)
bytes=$(find "$ctx" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')

# Warm the page cache so that neither command pays for the first read.
tar -C "$work" -cf - context | cat >/dev/null

out="$work/out.tar"
measure() { # measure LABEL CMD...: appends "wall rss" to $work/LABEL.times
	local label=$1
	shift
	# Start from no dirty pages: dfbuild fsyncs its archive and tar does not, so without
	# this a dfbuild run would also wait for the previous tar run's write-back.
	rm -f "$out"
	sync
	if ! /usr/bin/time -f '%e %M' -o "$work/$label.last" "$@" >"$work/$label.log" 2>&1; then
		echo "$label failed:" >&2
		cat "$work/$label.log" >&2
		exit 1
	fi
	cat "$work/$label.last" >>"$work/$label.times"
	read -r wall rss <"$work/$label.last"
	printf '  %-8s run %d: %6.2f s  %8d KiB\n' "$label" "$i" "$wall" "$rss"
}

echo "running each command $runs times (A: dfbuild, B: tar | tee | sha256sum)"
for ((i = 1; i <= runs; i++)); do
	measure dfbuild env SOURCE_DATE_EPOCH=0 "$work/dfbuild" -f "$here/Dockerfile" -o "$out" "$ctx"
	measure tar bash -c 'set -o pipefail; tar -C "$1" -cf - context | tee "$2" | sha256sum' _ "$work" "$out"
done

median() { # median COLUMN FILE
	cut -d' ' -f"$1" "$2" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
a_wall=$(median 1 "$work/dfbuild.times")
a_rss=$(median 2 "$work/dfbuild.times")
b_wall=$(median 1 "$work/tar.times")
b_rss=$(median 2 "$work/tar.times")

echo
echo "context: $size requested, $bytes bytes in $files files"
awk -v aw="$a_wall" -v ar="$a_rss" -v bw="$b_wall" -v br="$b_rss" -v n="$runs" 'BEGIN {
	printf "medians of %d runs     wall (s)   peak RSS (MiB)\n", n
	printf "  dfbuild            %8.2f   %14.1f\n", aw, ar / 1024
	printf "  tar|tee|sha256sum  %8.2f   %14.1f\n", bw, br / 1024
	ratio = (bw > 0) ? aw / bw : 0
	printf "wall ratio dfbuild/tar: %.2f (target <= 1.50: %s)\n", ratio, (ratio <= 1.5) ? "met" : "missed"
	printf "dfbuild peak RSS: %.1f MiB (target < 100 MiB for 2 GiB: %s)\n", ar / 1024, (ar < 100 * 1024) ? "met" : "missed"
}'
