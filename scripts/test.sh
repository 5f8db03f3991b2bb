#!/usr/bin/env bash
# The test command of README.md: installs what the tests need on a fresh machine, then
# runs every test. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f ../shared/fixtures/events_1day.parquet ]; then
  echo "error: ../shared (the spec and fixtures) must sit beside this repository" >&2
  exit 1
fi
# The generator's layout is checked with pyarrow and pandas.
if ! python3 -c "import pyarrow, pandas" 2>/dev/null; then
  echo "installing pyarrow and pandas for the layout test..."
  python3 -m pip install --quiet --disable-pip-version-check pyarrow pandas
fi
# The map page is tested in Debian's headless Chromium, driven by playwright-core.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the map page test..."
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium > /dev/null
fi
# Replicas are tested against Debian's nats-server (started by the tests with -js).
if [ ! -x /usr/sbin/nats-server ] && [ ! -x /usr/bin/nats-server ]; then
  echo "installing Debian's nats-server for the replica tests..."
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server > /dev/null
fi
# The Spark source is tested in real PySpark 4 (local mode, on the machine's Java 17).
if ! python3 -c "import pyspark, sys; sys.exit(int(pyspark.__version__.split('.')[0]) < 4)" 2>/dev/null; then
  echo "installing PySpark 4 for the Spark source tests..."
  python3 -m pip install --quiet --disable-pip-version-check "pyspark>=4.2,<5"
fi
# The REST endpoints are fuzzed from docs/openapi.yaml by schemathesis.
if ! command -v st > /dev/null; then
  echo "installing schemathesis for the contract test of the REST endpoints..."
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
# The package installs as a user installs it (this builds the engine with cargo).
python3 -m pip install --quiet --disable-pip-version-check ./python
python3 -c "from caspers_replay._engine import engine_path; print('caspers_replay installed, engine', engine_path())"
# The page tests' and the API documents' node modules, and the TypeScript client's build
# tools (its committed build is checked against its sources); npm ci when the lock file is
# newer than the last install.
for dir in tests/e2e clients/js; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done
cargo test --release
