#!/usr/bin/env bash
# Sets farl up on Debian/Ubuntu: the system packages of apt-packages.txt, then .venv with farl
# (editable) and its dev tools. Safe to run again: it installs only what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  sudo_cmd="sudo"
fi

# A line "pkg  # optional" is installed where the distribution has it as a package, and skipped elsewhere.
mapfile -t wanted < <(grep -vE '^[[:space:]]*(#|$)' apt-packages.txt)
missing=()
optional=()
for line in "${wanted[@]}"; do
  pkg="${line%%#*}"
  pkg="${pkg//[[:space:]]/}"
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    case "$line" in
      *"# optional"*) optional+=("$pkg") ;;
      *) missing+=("$pkg") ;;
    esac
  fi
done
if [ -f .venv/.farl-installed ]; then
  optional=()  # looked for at the first set-up; where it was not a package, it is not one now either
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  $sudo_cmd apt-get update -q
  for pkg in "${optional[@]}"; do
    if apt-cache policy "$pkg" 2>/dev/null | grep -q "Candidate: [0-9]"; then
      missing+=("$pkg")
    else
      echo "setup: $pkg is not a package here: skipping it (only an optional test needs it)"
    fi
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python 3.11 or 3.12: FARL_PYTHON if set, else the first of these that runs as one. A name can
# resolve and still not run (a pyenv shim for a version not selected), so each is run, not looked up.
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1; }
py="${FARL_PYTHON:-}"
if [ -n "$py" ]; then
  if ! supported "$py"; then
    echo "setup: FARL_PYTHON=$py does not run as Python 3.11 or 3.12; set it to the path of one" >&2
    exit 1
  fi
else
  for cand in python3.11 python3.12 python3; do
    if supported "$cand"; then
      py=$cand
      break
    fi
  done
  if [ -z "$py" ]; then
    echo "setup: no Python 3.11 or 3.12 found (Debian 12 ships 3.11, Ubuntu 24.04 ships 3.12); set FARL_PYTHON" >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$py" -m venv .venv

stamp=.venv/.farl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing farl and its Python dependencies into .venv (torch is large; first run takes minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/farl)"
