#!/usr/bin/env bash
# What the dashboard's browser test (tests/dashboard.rs) needs: Debian's Chromium and
# playwright-core (pinned in tests/browser/package-lock.json; it drives the system
# Chromium, npm's own browser download is never used). Idempotent: apt-get runs only when
# /usr/bin/chromium is missing, npm ci only when the lock file changed.
# Usage: scripts/browser.sh setup
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-setup}" in
setup)
    if [ ! -x /usr/bin/chromium ]; then
        echo "== installing chromium (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq chromium >/dev/null
    fi
    command -v node >/dev/null || { echo "node is needed for the browser test" >&2; exit 1; }
    stamp=tests/browser/node_modules/.lock-sha
    want=$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "== npm ci (tests/browser)"
        (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
        echo "$want" >"$stamp"
    fi
    echo "== browser: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version')"
    ;;
*)
    echo "usage: $0 setup" >&2
    exit 2
    ;;
esac
