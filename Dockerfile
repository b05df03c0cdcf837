# The fleet: metrics-aggregator, ml-inference, authoritative-scaler, docker-guard (and
# demo-service, demo-consumer, load-testing, topic-tail) in one image; docker-compose.yml picks the binary per service.
#
# By default the builder stage compiles everything with the Rust image. No service links
# libxgboost: the XGBoost voter evaluates the booster's file in Rust (only the trainer, not in
# this image, needs the library). Where no image can be pulled, scripts/build-local-images.sh builds the
# same file with both stages on a local Debian image and PREBUILT=1: the binaries built on the
# host are copied from .docker-dist/ instead of compiled.
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
ARG PREBUILT=0
WORKDIR /src
COPY . .
RUN set -eu; mkdir -p /out/bin; \
    if [ "$PREBUILT" = 1 ]; then \
      cp -r .docker-dist/bin/. /out/bin/; \
    else \
      apt-get update -q && apt-get install -y -q --no-install-recommends cmake; \
      CARGO_TARGET_DIR=/tmp/target cargo build --release --locked \
        -p metrics-aggregator -p ml-inference -p authoritative-scaler -p docker-guard -p demo-service -p demo-consumer -p load-testing -p topic-tail; \
      for b in metrics-aggregator ml-inference authoritative-scaler docker-guard demo-service demo-consumer load-testing topic-tail; do \
        cp /tmp/target/release/$b /out/bin/ && strip --strip-debug /out/bin/$b; done; \
    fi

FROM ${RUNTIME_IMAGE}
# The healthchecks use curl.
RUN if ! command -v curl >/dev/null; then \
      apt-get update -q && apt-get install -y -q --no-install-recommends curl ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=builder /out/bin/ /usr/local/bin/
# One malloc arena: glibc gives each thread that allocates an arena of its own and keeps what
# they freed, which was 5 to 9 MiB of each service's peak (docs/BENCHMARKS.md, "Memory bounds").
ENV MALLOC_ARENA_MAX=1
WORKDIR /app
COPY models/ /app/models/
# Runs as an unprivileged user; the scaler reaches Docker through docker-guard over TCP (the
# guard alone runs as root, without capabilities, to open the socket).
RUN mkdir -p /app/output && chown -R 65534:65534 /app/output
USER 65534:65534
CMD ["metrics-aggregator"]
