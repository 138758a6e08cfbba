#!/usr/bin/env bash
# Packs the agent for a device: one tarball, @fleet/agent with the fleet packages it imports
# (protocol, runtime, firmware) bundled inside it, so `npm install --omit=dev fleet-agent-<v>.tgz`
# needs nothing from this repository and fetches only the agent's own npm dependencies.
# npm does not bundle workspace packages itself (it looks for them in agent/node_modules, where
# workspaces never put them), so the packages are staged the way an installed tree holds them.
# Usage: agent/pack.sh [destination directory, default: the current directory]   (after `npm run build`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$(cd "${1:-.}" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

unpack() { # <workspace> <directory>: the files `npm pack` would publish for the workspace
  local tgz
  tgz=$(cd "$root" && npm pack --silent -w "$1" --pack-destination "$stage")
  mkdir -p "$2"
  tar xzf "$stage/$tgz" -C "$2" --strip-components=1
  rm "$stage/$tgz"
}

[ -f "$root/agent/dist/fleet-agent.js" ] || { echo "agent/dist is missing: run npm run build first" >&2; exit 2; }
unpack agent "$stage/agent"
for pkg in $(node -p "require('$stage/agent/package.json').bundleDependencies.map((n) => n.replace('@fleet/', '')).join(' ')"); do
  unpack "$pkg" "$stage/agent/node_modules/@fleet/$pkg"
done
(cd "$stage/agent" && npm pack --silent --pack-destination "$dest")
