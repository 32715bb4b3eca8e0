# Sourced by the bench scripts: sets `bin` to the directory of the release bench binaries,
# `$BIN` when given (binaries set aside, e.g. an older commit's), else builds them.
if [ -n "${BIN:-}" ]; then
    bin=$BIN
else
    cargo build --release --locked -p buvar-bench --bins >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin="$target_dir/release"
fi
