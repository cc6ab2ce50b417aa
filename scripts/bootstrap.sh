# Sourced by scripts/demo and scripts/test: make .venv with the project and its dev tools.
# On a fresh Debian machine run as root it also installs python3-venv when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_root_debian() {
  [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null
}

if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if need_root_debian; then
    echo "== installing python3 and python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  else
    echo "error: Python 3.11+ with venv is needed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

python3 - <<'PY' || { echo "error: Python 3.11 or newer is needed" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

# Reinstall only when a pyproject changed, so the second run starts in seconds.
shopt -s nullglob
packages=(build/*/pyproject.toml)
stamp_src=$(cat pyproject.toml "${packages[@]}" | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.mt5forge-stamp 2>/dev/null)" != "$stamp_src" ]; then
  echo "== installing Python dependencies into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  extra=()
  for p in "${packages[@]}"; do
    extra+=(-e "$(dirname "$p")")
  done
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' "${extra[@]}"
  echo "$stamp_src" > .venv/.mt5forge-stamp
fi
export PATH="$PWD/.venv/bin:$PATH"
