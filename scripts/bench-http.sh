#!/usr/bin/env bash
# The HTTP benchmarks of BENCHMARKS.md in one command: builds the baselines, the buvar-axum
# server and the `hello` example in release mode, then runs the harness (interleaved wrk
# rounds, start-up and memory). Extra arguments go to the harness (`--help` lists them), e.g.
#   scripts/bench-http.sh --rounds 3 --duration 3 --startup-runs 5
# All traffic goes to 127.0.0.1; the whole run takes about 5 x 5 x 7 s plus the start-up part.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it from Debian's packages" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --locked -p buvar-bench --bins
cargo build --release --locked -p buvar-axum --example hello
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)" >&2
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$target_dir/release/bench-http" --bin-dir "$target_dir/release" "$@"
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
