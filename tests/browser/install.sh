#!/bin/sh
# Installs playwright-core, pinned by package-lock.json, into
# tests/browser/node_modules for test_browser.py. It never downloads a
# browser: the test drives Debian's /usr/bin/chromium (tools/deps --test).
set -eu
cd "$(dirname "$0")"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
