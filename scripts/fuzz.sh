#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each); a crash fails the script and
# leaves its input in fuzz/artifacts/<target>/ (turn it into a regression test). The inputs in
# fuzz/seeds/<target>/ (the config edges that once panicked) start every run.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 10         # 10 s per target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On a stable toolchain the nightly
# instrumentation flags are unlocked with RUSTC_BOOTSTRAP=1.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
for target in socket_uri http_config_toml http_config_env; do
    echo "== $target: ${seconds}s"
    # The working corpus first (written to), then the checked-in edge cases, if any.
    mkdir -p "corpus/$target"
    seeds=()
    if [ -d "seeds/$target" ]; then seeds=("seeds/$target"); fi
    cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time="$seconds" -max_len=512
done
