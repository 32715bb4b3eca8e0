#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md in one command: builds the baselines, the buvar-axum server
# and the `hello` example in release mode, runs the HTTP harness (interleaved wrk rounds,
# start-up and memory), then the criterion micro-benchmarks, printed as ratios against their
# baselines. Extra arguments go to the harness (`--help` lists them), e.g.
#   scripts/bench-http.sh --rounds 3 --duration 3 --startup-runs 5
# BENCH_CRITERION=0 skips the criterion part. All traffic goes to 127.0.0.1; the whole run
# takes about 5 rounds x 5 variants x 7 s, plus a minute of start-up runs and three of criterion.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it from Debian's packages" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --locked -p buvar-bench --bins --example hot
cargo build --release --locked -p buvar-axum --example hello
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)" >&2
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$target_dir/release/bench-http" --bin-dir "$target_dir/release" "$@"

if [ "${BENCH_CRITERION:-1}" != 0 ]; then
    # Stale groups of earlier runs would mix into the tables.
    rm -rf "$target_dir/criterion"
    quick=(--warm-up-time 1 --measurement-time 3 --noplot)
    cargo bench --locked -p buvar-kit --bench kit -- "${quick[@]}" >&2
    cargo bench --locked -p buvar-bench --bench extract -- "${quick[@]}" >&2
    echo
    echo "## Criterion: median per iteration and ratio against each baseline of the same run"
    "$target_dir/release/criterion-ratios" "$target_dir/criterion"
fi
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
