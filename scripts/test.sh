#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit, golden,
# property, CLI and fault-injection tests against the embedded local cloud,
# and the AWS backend's end-to-end tests against a moto server).
# Usage: bash scripts/test.sh
#
# The moto server (an AWS emulator from PyPI) is installed into .venv on
# first use and started on a free loopback port for the duration of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A build from nothing gains nothing from incremental compilation's
# bookkeeping, which costs time on the workspace's own crates.
if [ "${CI:-}" = "true" ]; then
    export CARGO_INCREMENTAL=0
fi
# insta must never rewrite snapshots in a test run: a mismatch fails.
export INSTA_UPDATE=no
# The AWS tests fail (rather than skip) when no moto endpoint is set.
export CONVERGE_REQUIRE_MOTO=1

# Each phase's heading says how long the run has taken so far, so that a
# slow CI run tells which phase grew (the budget: 20 minutes from scratch).
phase() { echo "== $1 (at ${SECONDS} s)"; }

phase "cargo fmt --check"
cargo fmt --all --check

phase "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

phase "moto server"
# shellcheck source=scripts/moto.sh
source scripts/moto.sh start
trap moto_stop EXIT

phase "cargo test"
cargo test --workspace --locked
phase "done"
