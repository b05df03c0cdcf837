#!/usr/bin/env bash
# Builds every image the end-to-end run needs without a registry:
#
#   ml-autoscaler/debian:bookworm   a Debian root file system made with debootstrap, imported
#   ml-autoscaler/fleet:local       the fleet, from the same Dockerfile as production, with the
#                                   binaries built here (PREBUILT=1) on the Debian base
#   ml-autoscaler/prometheus:local  Debian's Prometheus on the Debian base
#   ml-autoscaler/tansu:local       the Kafka-compatible broker on the Debian base
#   ml-autoscaler/haproxy:local     Debian's HAProxy, for the shop's edge-router
#
# The base image is cached (built once per machine); the others are rebuilt from the current
# binaries. Users with a registry do not need any of this: docker compose builds the fleet with
# the Rust image and pulls the rest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

BASE=ml-autoscaler/debian:bookworm
# The Debian mirror this machine's apt already uses (a machine behind a local mirror or proxy
# reaches only that one); deb.debian.org where none is found; DEBIAN_MIRROR overrides both.
apt_mirror() {
  local found
  found=$( {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | sed 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -hs '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
  } | grep -E '/debian/?$' | head -1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  say "building $BASE with debootstrap from $MIRROR (once per machine, a few minutes)"
  command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/install-deps.sh"
  rootfs=$(mktemp -d /var/tmp/ml-autoscaler-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=libstdc++6,ca-certificates,zlib1g,curl,haproxy bookworm "$rootfs" "$MIRROR" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

say "building the fleet's release binaries"
cargo build --release --locked -p metrics-aggregator -p ml-inference -p authoritative-scaler \
  -p docker-guard -p demo-service -p demo-consumer -p load-testing -p topic-tail
dist="$REPO_ROOT/.docker-dist"
rm -rf "$dist" && mkdir -p "$dist/bin"
for b in metrics-aggregator ml-inference authoritative-scaler docker-guard demo-service demo-consumer load-testing topic-tail; do
  cp "$CARGO_TARGET_DIR/release/$b" "$dist/bin/"
  strip --strip-debug "$dist/bin/$b"
done

say "building ml-autoscaler/fleet:local (Dockerfile, PREBUILT=1)"
docker build -q -t ml-autoscaler/fleet:local \
  --build-arg BUILDER_IMAGE="$BASE" --build-arg RUNTIME_IMAGE="$BASE" --build-arg PREBUILT=1 . >/dev/null

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp /usr/bin/prometheus "$context/prometheus"
printf 'FROM %s\nCOPY prometheus /bin/prometheus\nENTRYPOINT ["/bin/prometheus"]\n' "$BASE" >"$context/Dockerfile"
docker build -q -t ml-autoscaler/prometheus:local "$context" >/dev/null
rm -f "$context/prometheus"
cp "$HOME/.cargo/bin/tansu" "$context/tansu"
printf 'FROM %s\nCOPY tansu /bin/tansu\nENTRYPOINT ["/bin/tansu"]\n' "$BASE" >"$context/Dockerfile"
docker build -q -t ml-autoscaler/tansu:local "$context" >/dev/null
printf 'FROM %s\nENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]\n' "$BASE" >"$context/Dockerfile"
docker build -q -t ml-autoscaler/haproxy:local "$context" >/dev/null
say "images ready: $BASE, ml-autoscaler/{fleet,prometheus,tansu,haproxy}:local"
