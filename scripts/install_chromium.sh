#!/usr/bin/env bash
# Install Debian's chromium for the headless browser checks (tests marked `browser`).
# Safe to run repeatedly; does nothing when /usr/bin/chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
if ! apt-cache policy chromium | grep -q "Candidate: [0-9]"; then
    $SUDO apt-get update
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
