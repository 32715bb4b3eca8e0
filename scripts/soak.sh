#!/usr/bin/env bash
# Soak test of the pre-fork supervisor (not part of the test suite): continuous HTTP load on
# `prefork-server`, a SIGHUP every 10 s and a kill -9 of a random worker every 7 s; it reports
# total and failed requests and the supervisor's thread and open-file counts at start and end.
#
#   scripts/soak.sh              # 10 minutes, 4 workers, 16 clients
#   scripts/soak.sh 180          # 3 minutes
#   scripts/soak.sh 600 --workers 8 --concurrency 32
#   SOAK_PROFILE=dev scripts/soak.sh 180   # reuse the debug build of the test suite
set -euo pipefail
seconds="${1:-600}"
shift || true
cd "$(dirname "$0")/.."
profile="${SOAK_PROFILE:-release}"
cargo build --profile "$profile" -p buvar-tests --bin prefork-server --bin soak
dir="$profile"
[ "$profile" = dev ] && dir=debug
exec "${CARGO_TARGET_DIR:-target}/$dir/soak" --seconds "$seconds" "$@"
