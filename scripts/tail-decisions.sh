#!/usr/bin/env bash
# Follows the scaler's decision log: one block per decision, and a log line beside it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
compose logs -f --tail="${TAIL:-100}" authoritative-scaler
