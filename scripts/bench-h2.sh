#!/usr/bin/env bash
# HTTP/2 (h2c with prior knowledge) throughput and latency: h2load against plain `axum::serve`
# (variant a, which answers h2c on its own) and against buvar-axum with two workers (variant
# d2: FORKS=2), same handler, in interleaved rounds; prints each round and the medians' ratios.
#   scripts/bench-h2.sh                     # 5 rounds of 5 s, 16 connections x 10 streams
#   ROUNDS=3 SECONDS_PER_ROUND=3 scripts/bench-h2.sh
# Needs h2load (Debian's nghttp2-client).
#   BIN=DIR      measure the binaries in DIR instead of building
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-5}
seconds=${SECONDS_PER_ROUND:-5}
if ! command -v h2load >/dev/null; then
    echo "h2load is missing; installing it from Debian's packages" >&2
    apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null
fi
# shellcheck source=scripts/bench-bins.sh
source scripts/bench-bins.sh

port_a=$((20000 + RANDOM % 20000))
port_d=$((port_a + 1))
"$bin/plain-axum" "127.0.0.1:$port_a" >/dev/null 2>&1 &
pid_a=$!
APP_HTTP_HOST=127.0.0.1 APP_HTTP_PORT=$port_d APP_HTTP_FORKS=2 APP_LOG_LEVEL=warn \
    "$bin/buvar-server" >/dev/null 2>&1 &
pid_d=$!
trap 'kill -TERM $pid_a $pid_d 2>/dev/null; wait' EXIT
for port in $port_a $port_d; do
    for _ in $(seq 1 300); do
        curl -sf --http2-prior-knowledge "http://127.0.0.1:$port/" >/dev/null && break
        sleep 0.1
    done
done

# load PORT: prints "<requests/s> <mean latency in us> <failed requests>"
load() {
    local out
    out=$(h2load -c16 -m10 -t1 -D "$seconds" --warm-up-time=1 "http://127.0.0.1:$1/")
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            return v * 1000000
        }
        /^finished in/ { rps = $4 }
        /^requests:/ { failed = $10 }
        /^time for request:/ { mean = us($6) }
        END { printf "%s %d %s\n", rps, mean, failed }' <<<"$out"
}

echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| round | (a) req/s | (a) mean latency | (d2) req/s | (d2) mean latency | failed (a/d2) |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
results=()
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then
        read -r ra la fa < <(load $port_a)
        read -r rd ld fd < <(load $port_d)
    else
        read -r rd ld fd < <(load $port_d)
        read -r ra la fa < <(load $port_a)
    fi
    echo "| $round | $ra | ${la} us | $rd | ${ld} us | $fa/$fd |"
    results+=("$ra $la $rd $ld")
done
printf '%s\n' "${results[@]}" | awk '
    { ra[NR] = $1; la[NR] = $2; rd[NR] = $3; ld[NR] = $4 }
    function median(a, n,   i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        n = NR
        mra = median(ra, n); mla = median(la, n); mrd = median(rd, n); mld = median(ld, n)
        printf "\nmedians: (a) %.0f req/s, %.0f us; (d2) %.0f req/s, %.0f us\n", mra, mla, mrd, mld
        printf "(d2)/(a): req/s %.3f, mean latency %.2f\n", mrd / mra, mld / mla
    }'
