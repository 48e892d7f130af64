#!/usr/bin/env bash
# Install everything Greenroom needs on a fresh Debian machine, once; quiet when nothing is missing.
# Steps: Debian packages -> Python venv (.venv, pinned) -> LiveKit server (go install, cached
# outside the clone) and run-time assets (`greenroom setup`) -> npm packages for the viewer and
# the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1;32m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# 1. Debian packages -------------------------------------------------------------------------
# command-or-path -> package
declare -A NEED=(
  [espeak-ng]=espeak-ng
  [ffmpeg]=ffmpeg
  [chromium]=chromium
  [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]=fonts-dejavu-core
  [pg_ctlcluster]=postgresql
  [redis-server]=redis-server  # multi-node LiveKit tests (tests/scale)
)
missing=()
for what in "${!NEED[@]}"; do
  if [[ "$what" == /* ]]; then [[ -e "$what" ]] || missing+=("${NEED[$what]}")
  else command -v "$what" >/dev/null 2>&1 || missing+=("${NEED[$what]}"); fi
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  if [[ -n "$SUDO" ]] && ! command -v sudo >/dev/null; then
    die "need root to install: apt-get install ${missing[*]}"
  fi
  $SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# 2. Python virtual environment -------------------------------------------------------------
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1))"
stamp=.venv/.greenroom-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  say "installing Python packages into .venv (pinned in requirements.lock)"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv || die "could not create .venv (apt-get install python3-venv?)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null || die "pip upgrade failed"
  .venv/bin/python -m pip install -q -r requirements.lock || die "pip install -r requirements.lock failed"
  .venv/bin/python -m pip install -q --no-deps -e . >/dev/null 2>&1 || die "pip install -e . failed"
  echo "$want" > "$stamp"
fi

# 3. LiveKit server and run-time assets (cached outside the clone) --------------------------
.venv/bin/greenroom setup --quiet || die "greenroom setup failed (see above)"

# 4. npm packages for the viewer page ------------------------------------------------------
if [[ -f src/greenroom/web/package.json ]]; then
  command -v npm >/dev/null || die "npm is needed for the viewer page (apt-get install npm)"
  web=src/greenroom/web
  wstamp=$web/node_modules/.greenroom-installed
  wwant=$(cat $web/package.json $web/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [[ "$(cat "$wstamp" 2>/dev/null)" != "$wwant" ]]; then
    say "installing npm packages for the viewer"
    (cd $web && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $web"
    echo "$wwant" > "$wstamp"
  fi
  if [[ -f $web/build.mjs ]]; then
    (cd $web && node build.mjs >/dev/null) || die "building the viewer bundle failed"
  fi
fi

# 5. npm packages for the vendor-SDK tests (the official HeyGen JS client) -------------------
if [[ -f tests/js/package.json ]]; then
  command -v npm >/dev/null || die "npm is needed for the vendor SDK tests (apt-get install npm)"
  js=tests/js
  jstamp=$js/node_modules/.greenroom-installed
  jwant=$(cat $js/package.json $js/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [[ "$(cat "$jstamp" 2>/dev/null)" != "$jwant" ]]; then
    say "installing npm packages for the vendor SDK tests"
    (cd $js && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $js"
    echo "$jwant" > "$jstamp"
  fi
fi

# 6. npm packages for the agents-frontend tests (LiveKit's React agent hooks) ----------------
if [[ -f tests/js_agents/package.json ]]; then
  command -v npm >/dev/null || die "npm is needed for the agents frontend tests (apt-get install npm)"
  ja=tests/js_agents
  jastamp=$ja/node_modules/.greenroom-installed
  jawant=$(cat $ja/package.json $ja/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [[ "$(cat "$jastamp" 2>/dev/null)" != "$jawant" ]]; then
    say "installing npm packages for the agents frontend tests"
    (cd $ja && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $ja"
    echo "$jawant" > "$jastamp"
  fi
  (cd $ja && node build.mjs >/dev/null) || die "building the agents frontend test app failed"
fi
