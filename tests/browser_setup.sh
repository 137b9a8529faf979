#!/usr/bin/env bash
# Set-up for tests/test_browser.py: Debian's chromium (system browser; Playwright's own
# browser downloads cannot reach their servers here) and the Playwright Python client.
# Idempotent: a second run only checks. Needs root for apt-get (CI and dev machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
PLAYWRIGHT_PIN="playwright==1.65.2"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ]; then
        echo "browser_setup: chromium is missing and this user is not root: install Debian's 'chromium' package" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "$PLAYWRIGHT_PIN"
fi
"$PY" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
