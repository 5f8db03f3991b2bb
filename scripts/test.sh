#!/usr/bin/env bash
# The test command of README.md: installs what the tests need on a fresh machine, then
# runs every test. CI runs exactly this (see .ci/run).
#
# Python packages go into a virtual environment of the project's own (.venv, ignored by
# git), never into the machine's Python; Debian packages (chromium, nats-server) are
# installed with apt-get when the script may, and named when it may not.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's packages: headless Chromium for the page tests (driven by playwright-core),
# nats-server for the replica tests (started by the tests with -js).
apt_install() {
  local package=$1 why=$2
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    SUDO="sudo"
  else
    echo "error: $why needs Debian's $package: run 'sudo apt-get install $package', then this again" >&2
    exit 1
  fi
  echo "installing Debian's $package for $why..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" > /dev/null
}
[ -x /usr/bin/chromium ] || apt_install chromium "the map page tests"
if [ ! -x /usr/sbin/nats-server ] && [ ! -x /usr/bin/nats-server ]; then
  apt_install nats-server "the replica tests"
fi

# The Python side: pyarrow and pandas (the layout tests and the fixture day), PySpark 4
# (the Spark source, local mode on the machine's Java 17), schemathesis (the REST
# endpoints fuzzed from docs/openapi.yaml), and the package itself as a user installs it
# (this builds the engine with cargo).
if [ ! -x .venv/bin/python ]; then
  echo "making the project's Python environment in .venv..."
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
requirements=tests/python/requirements.txt
if [ ! -f .venv/.requirements ] || ! cmp -s "$requirements" .venv/.requirements; then
  echo "installing the tests' Python packages into .venv ($requirements)..."
  python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" .venv/.requirements
fi
python -m pip install --quiet --disable-pip-version-check ./python
python -c "from caspers_replay._engine import engine_path; print('caspers_replay installed, engine', engine_path())"

# The page tests' and the API documents' node modules, the TypeScript client's build tools
# (its committed build is checked against its sources), and the React example's (built on
# the packed client); npm ci when the lock file is newer than the last install.
for dir in tests/e2e clients/js examples/react; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done
cargo test --release
