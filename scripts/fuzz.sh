#!/usr/bin/env bash
# Fuzzes every parser of client input with cargo fuzz (libFuzzer, nightly toolchain), each
# for a bounded time, then keeps a minimized corpus in fuzz/corpus/TARGET: those inputs are
# replayed by `cargo test` (tests/fuzz_corpus.rs). Not part of the test command (too long
# for CI); run it by hand after changing a parser.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ws_frames stream_query position clock_change filter_message)
fi
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  echo "== $t: ${seconds} s"
  work="$(mktemp -d)"
  cargo +nightly fuzz run -O "$t" "$work" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|Done)" || true
  # Keep a minimized union of what was there and what the run found (libFuzzer's merge).
  min="$(mktemp -d)"
  cargo +nightly fuzz run -O "$t" "$min" "corpus/$t" "$work" -- -merge=1 > /dev/null 2>&1 || true
  if [ -n "$(ls -A "$min")" ]; then
    rm -rf "corpus/$t" && mv "$min" "corpus/$t"
  fi
  echo "   corpus/$t: $(ls "corpus/$t" | wc -l) inputs kept"
  if ls artifacts/"$t"/ 2>/dev/null | grep -qE "^(crash|oom|timeout|leak)-"; then
    echo "   FOUND: see fuzz/artifacts/$t/ (add the input to fuzz/corpus/$t once fixed)"
    exit 1
  fi
  rm -rf "$work"
done
