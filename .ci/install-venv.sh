#!/usr/bin/env bash
# Creates .venv and installs the pinned packages of requirements.lock, then the
# project itself (editable, --no-deps). Safe to run twice at once (`make devnet`
# beside `make test` on a fresh clone): the second waits on a lock and then finds
# the stamp, so a running devnet never has its packages replaced under it.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP=$1

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "tkms needs Python 3.11+"'
mkdir -p "$VENV"
exec 9>"$VENV/.install.lock"
flock 9
[ -f "$STAMP" ] && exit 0
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pip==26.3
"$VENV/bin/python" -m pip install --quiet -r requirements.lock
# The build backend is pinned in the lock too: no build isolation fetching its own.
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
rm -f "$VENV"/.installed-*
touch "$STAMP"
