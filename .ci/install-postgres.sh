#!/usr/bin/env bash
# The storage tests need real PostgreSQL server binaries (tests/pg.py starts a
# throwaway server from /usr/lib/postgresql/*/bin). Installs them only when
# absent, so it is cheap to run on every CI job.
set -euo pipefail

if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    exit 0
fi

# Through env, not export: sudo would drop the variable.
APT=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$(id -u)" -ne 0 ]; then
    APT=(sudo "${APT[@]}")
fi

"${APT[@]}" update
# The default cluster Debian creates is unused: tests/pg.py runs its own.
"${APT[@]}" install -y --no-install-recommends postgresql
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || {
    echo "postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2
    exit 1
}
