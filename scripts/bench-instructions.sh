#!/usr/bin/env bash
# Instructions per request of the whole server process (hyper, layers, handler; user space),
# counted by callgrind, which does not depend on how busy the machine is. Each variant runs
# under `valgrind --tool=callgrind` twice, under `wrk -c16` for a short and a long while; the
# difference in instructions over the difference in requests leaves out start-up and exit.
#   scripts/bench-instructions.sh            # all variants, 2 s and 6 s of load
#   SHORT=1 LONG=3 scripts/bench-instructions.sh a c
# Variants: a (plain axum), i (plain axum with tower-http layers), c (buvar-axum, one
# process, current-thread runtime), e (as c, the three extractors), o (as c, `[metrics]` off).
# Needs valgrind and wrk (h2load with LOAD=h2).
#   LOAD=h2      load over HTTP/2 with prior knowledge (h2c): h2load -c16 -m10 instead of wrk
#   BIN=DIR      measure the binaries in DIR instead of building (e.g. a copy of an older commit's
#                `target/release`, to compare two commits in one run)
#   KEEP=DIR     keep the callgrind files there (DIR/<variant>.<seconds>.out), for
#                `callgrind_annotate` diffs per function
set -euo pipefail
cd "$(dirname "$0")/.."

short=${SHORT:-2}
long=${LONG:-6}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(a i c e)

# shellcheck source=scripts/bench-bins.sh
source scripts/bench-bins.sh
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    work=$KEEP
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

# run VARIANT SECONDS: prints "<requests> <instructions>"
run() {
    local variant=$1 seconds=$2 port path=/ pid requests out
    port=$((20000 + RANDOM % 20000))
    out="$work/$variant.$seconds.out"
    local -a command env=()
    case $variant in
        a) command=("$bin/plain-axum" "127.0.0.1:$port") ;;
        i) command=("$bin/plain-axum" "127.0.0.1:$port"); env=(PLAIN_AXUM_LAYERS=1) ;;
        c|e|o) command=("$bin/buvar-server")
             env=(APP_HTTP_HOST=127.0.0.1 APP_HTTP_PORT=$port APP_HTTP_FORKS=1 APP_HTTP_THREADS=1)
             [ "$variant" = e ] && env+=(BENCH_HANDLER=extract)
             [ "$variant" = o ] && env+=(APP_METRICS_ENABLED=false) ;;
        *) echo "unknown variant $variant (a, i, c, e or o)" >&2; exit 2 ;;
    esac
    env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "${command[@]}" \
        >"$work/$variant.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port$path" >/dev/null && break
        sleep 0.1
    done
    if [ "${LOAD:-}" = h2 ]; then
        requests=$(h2load -t1 -c16 -m10 -D "$seconds" "http://127.0.0.1:$port$path" \
            | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
    else
        requests=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$port$path" \
            | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$requests $(sed -n 's/^summary: //p' "$out")"
}

echo "| variant | instructions per request | vs (a) |"
echo "| --- | ---: | ---: |"
baseline=
for variant in "${variants[@]}"; do
    read -r r1 i1 < <(run "$variant" "$short")
    read -r r2 i2 < <(run "$variant" "$long")
    per=$(( (i2 - i1) / (r2 - r1) ))
    [ "$variant" = a ] && baseline=$per
    ratio=-
    [ -n "$baseline" ] && ratio=$(awk -v p="$per" -v b="$baseline" 'BEGIN { printf "%.2f", p / b }')
    echo "| ($variant) | $per | $ratio |"
done
