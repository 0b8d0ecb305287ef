#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit, golden,
# property, CLI and fault-injection tests against the embedded local cloud).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# insta must never rewrite snapshots in a test run: a mismatch fails.
export INSTA_UPDATE=no
export CI="${CI:-}"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked
