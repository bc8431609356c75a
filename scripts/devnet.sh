#!/usr/bin/env bash
# A local federation on 127.0.0.1 under .devnet/.
#   scripts/devnet.sh up [N]   set up .venv if needed, create an N-member devnet (default 4) and start it
#   scripts/devnet.sh down     stop every node of the devnet
#   scripts/devnet.sh status   heights and peers of every node
#   scripts/devnet.sh demo     bring the devnet up if it is not running, then play a market round step by step
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
fedmarket=.venv/bin/fedmarket
dir=.devnet

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
  up)
    nodes="${2:-4}"
    if [ ! -e "$dir/devnet.json" ]; then
      "$fedmarket" devnet init --nodes "$nodes" --dir "$dir"
    fi
    "$fedmarket" devnet up --dir "$dir"
    ;;
  down)
    "$fedmarket" devnet down --dir "$dir"
    ;;
  status)
    "$fedmarket" devnet status --dir "$dir"
    ;;
  demo)
    if [ ! -e "$dir/devnet.json" ]; then
      "$fedmarket" devnet init --nodes 4 --dir "$dir"
    fi
    "$fedmarket" devnet up --dir "$dir"
    "$fedmarket" devnet demo --dir "$dir"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
