#!/usr/bin/env bash
# registry.sh: dfbuild against a real registry on 127.0.0.1, side by side with skopeo.
#
#   testdata/bench/registry.sh [SIZE]        SIZE like 2GiB (default), 512MiB, 64MiB
#
# It starts Debian's docker-registry (the distribution registry) on a free loopback
# port with its access log on, generates the big-files context of compare.sh
# (testdata/bench/gencontext, FROM scratch, COPY . /data/), and measures, each RUNS
# times (default 3), alternately:
#
#   A: dfbuild --push of that build, with an empty cache, so every run compresses
#      (gzip, level 6) and uploads the whole layer
#   B: skopeo copy of the same image, as a docker-archive that dfbuild wrote once
#      (skopeo compresses as it uploads)
#
# each into a registry restarted with empty storage, so nothing is found already there.
#
# with /usr/bin/time (wall seconds, peak RSS). Then it counts, from the registry's
# access log:
#   - a second build FROM the pushed image downloads no blob (the cache serves it);
#   - pushing an image whose base the registry holds uploads only its new layer and
#     config, and mounts the base layer;
# and reports the peak RSS of the pull (the first build FROM the big image) and of
# the pushes. It fails only when a command fails, never on a missed target.
#
# Environment: BENCH_SIZE, RUNS, BENCH_DIR (default $TMPDIR or /tmp; needs about
# 4 x SIZE of free disk). Everything it writes is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
size=${1:-${BENCH_SIZE:-2GiB}}
runs=${RUNS:-3}

need() { command -v "$1" >/dev/null || { echo "registry.sh needs $1 (apt-get install $2)" >&2; exit 1; }; }
need docker-registry docker-registry
need skopeo skopeo
[[ -x /usr/bin/time ]] || { echo "registry.sh needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/dfbuild-regbench.XXXXXX")
regpid=
cleanup() {
	[[ -n $regpid ]] && kill "$regpid" 2>/dev/null && wait "$regpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$repo" && go build -o "$work/dfbuild" ./cmd/dfbuild)
(cd "$repo" && go build -o "$work/gencontext" ./testdata/bench/gencontext)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
# registry_fresh (re)starts the registry with empty storage, so that no push finds a
# blob an earlier one uploaded (skopeo remembers blobs it pushed and mounts them).
registry_fresh() {
	if [[ -n $regpid ]]; then
		kill "$regpid" 2>/dev/null || true
		wait "$regpid" 2>/dev/null || true
	fi
	rm -rf "$work/registry"
	cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $host
  secret: bench
YML
	docker-registry serve "$work/registry.yml" >>"$work/access.log" 2>"$work/registry.err" &
	regpid=$!
	for _ in $(seq 100); do
		curl -fsS "http://$host/v2/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the registry did not start:" >&2
	cat "$work/registry.err" >&2
	exit 1
}
registry_fresh
echo "registry at $host"

ctx="$work/context"
"$work/gencontext" -size "$size" -seed 1 "$ctx" >/dev/null
tar -C "$work" -cf - context | cat >/dev/null # warm the page cache
export SOURCE_DATE_EPOCH=0
"$work/dfbuild" -q -f "$here/Dockerfile" -o "$work/image.tar" "$ctx" >/dev/null

measure() { # measure LABEL CMD...: appends "wall rss" to $work/LABEL.times
	local label=$1
	shift
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

echo "pushing $size $runs times each (A: dfbuild --push, B: skopeo copy docker-archive:)"
for ((i = 1; i <= runs; i++)); do
	rm -rf "$work/cache"
	registry_fresh
	measure dfbuild env XDG_CACHE_HOME="$work/cache" "$work/dfbuild" -q --push -t "$host/bench-dfbuild-$i:1" -f "$here/Dockerfile" "$ctx"
	registry_fresh
	measure skopeo skopeo copy -q --dest-tls-verify=false "docker-archive:$work/image.tar" "docker://$host/bench-skopeo-$i:1"
done

median() { # median COLUMN FILE
	cut -d' ' -f"$1" "$2" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
count() { # count PATTERN: access-log lines since the mark
	tail -n +"$mark" "$work/access.log" | grep -cE "$1" || true
}

# A build FROM a pushed image, twice, with one cache: the second downloads nothing.
registry_fresh
rm -rf "$work/cache"
env XDG_CACHE_HOME="$work/cache" "$work/dfbuild" -q --push -t "$host/bench-dfbuild-1:1" -f "$here/Dockerfile" "$ctx" >/dev/null
app="$work/app"
mkdir -p "$app"
echo hello >"$app/hello.txt"
printf 'FROM %s\nCOPY hello.txt /\n' "$host/bench-dfbuild-1:1" >"$app/Dockerfile"
rm -rf "$work/cache"
mark=$(($(wc -l <"$work/access.log") + 1))
/usr/bin/time -f '%e %M' -o "$work/pull.last" env XDG_CACHE_HOME="$work/cache" "$work/dfbuild" -q -o "$work/app.tar" "$app" >/dev/null
first_gets=$(count '"GET /v2/bench-dfbuild-1/blobs/sha256:')
mark=$(($(wc -l <"$work/access.log") + 1))
env XDG_CACHE_HOME="$work/cache" "$work/dfbuild" -q -o "$work/app.tar" "$app" >/dev/null
second_gets=$(count '"GET /v2/[^ ]*/blobs/sha256:')
read -r pull_wall pull_rss <"$work/pull.last"

# Push it: the base layer is in the registry already (another repository).
mark=$(($(wc -l <"$work/access.log") + 1))
/usr/bin/time -f '%e %M' -o "$work/push2.last" env XDG_CACHE_HOME="$work/cache" "$work/dfbuild" -q --push -t "$host/bench-app:1" "$app" >/dev/null
uploads=$(count '"PUT /v2/bench-app/blobs/uploads/[^ ]* HTTP/[0-9.]*" 201')
mounts=$(count '"POST /v2/bench-app/blobs/uploads/\?[^ ]*mount=[^ ]* HTTP/[0-9.]*" 201')
read -r push2_wall push2_rss <"$work/push2.last"

a_wall=$(median 1 "$work/dfbuild.times")
a_rss=$(median 2 "$work/dfbuild.times")
b_wall=$(median 1 "$work/skopeo.times")
b_rss=$(median 2 "$work/skopeo.times")
bytes=$(stat -c %s "$work/image.tar")
echo
echo "image: $size of file contents, archive $bytes bytes; registry $(docker-registry --version 2>/dev/null | head -1)"
awk -v aw="$a_wall" -v ar="$a_rss" -v bw="$b_wall" -v br="$b_rss" -v n="$runs" 'BEGIN {
	printf "push, medians of %d runs   wall (s)   peak RSS (MiB)\n", n
	printf "  dfbuild --push            %8.2f   %14.1f\n", aw, ar / 1024
	printf "  skopeo copy               %8.2f   %14.1f\n", bw, br / 1024
	ratio = (bw > 0) ? aw / bw : 0
	printf "push wall ratio dfbuild/skopeo: %.2f (target <= 1.20: %s)\n", ratio, (ratio <= 1.2) ? "met" : "missed"
	printf "push peak RSS: %.1f MiB (target < 64 MiB: %s)\n", ar / 1024, (ar < 64 * 1024) ? "met" : "missed"
}'
awk -v w="$pull_wall" -v r="$pull_rss" 'BEGIN {
	printf "pull (first build FROM the image): %.2f s, peak RSS %.1f MiB (target < 64 MiB: %s)\n", w, r / 1024, (r < 64 * 1024) ? "met" : "missed" }'
echo "blob GETs: first build $first_gets, second build $second_gets (target 0: $([[ $second_gets == 0 ]] && echo met || echo missed))"
echo "push with the base in the registry: $uploads blobs uploaded, $mounts mounted (target: 2 uploaded, the new layer and the config: $([[ $uploads == 2 ]] && echo met || echo missed)), peak RSS $((push2_rss / 1024)) MiB"
