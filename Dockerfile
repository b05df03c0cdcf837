# The fleet: metrics-aggregator, ml-inference, authoritative-scaler, docker-guard (and
# demo-service, loadgen, topic-tail) in one image; docker-compose.yml picks the binary per service.
#
# By default the builder stage compiles everything with the Rust image and fetches libxgboost
# from its PyPI wheel. Where no image can be pulled, scripts/build-local-images.sh builds the
# same file with both stages on a local Debian image and PREBUILT=1: the binaries built on the
# host are copied from .docker-dist/ instead of compiled.
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
ARG PREBUILT=0
ARG XGBOOST_VERSION=3.2.0
WORKDIR /src
COPY . .
RUN set -eu; mkdir -p /out/bin /out/lib; \
    if [ "$PREBUILT" = 1 ]; then \
      cp -r .docker-dist/bin/. /out/bin/ && cp -r .docker-dist/lib/. /out/lib/; \
    else \
      apt-get update -q && apt-get install -y -q --no-install-recommends libclang-dev cmake python3-pip; \
      python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        "xgboost-cpu==${XGBOOST_VERSION}" -d /tmp/wheel; \
      python3 -c "import glob, zipfile; z = zipfile.ZipFile(glob.glob('/tmp/wheel/*.whl')[0]); \
[z.extract(n, '/out/lib') for n in z.namelist() if n.startswith(('xgboost/lib/', 'xgboost_cpu.libs/'))]"; \
      XGBOOST_LIB_DIR=/out/lib/xgboost/lib CARGO_TARGET_DIR=/tmp/target cargo build --release --locked \
        -p metrics-aggregator -p ml-inference -p authoritative-scaler -p docker-guard -p demo-service -p loadgen -p topic-tail; \
      for b in metrics-aggregator ml-inference authoritative-scaler docker-guard demo-service loadgen topic-tail; do \
        cp /tmp/target/release/$b /out/bin/ && strip --strip-debug /out/bin/$b; done; \
    fi

FROM ${RUNTIME_IMAGE}
# libxgboost needs libstdc++; the healthchecks use curl.
RUN if ! command -v curl >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libstdc++.so.6 ]; then \
      apt-get update -q && apt-get install -y -q --no-install-recommends curl ca-certificates libstdc++6 \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder /out/lib/ /opt/xgboost/
ENV LD_LIBRARY_PATH=/opt/xgboost/xgboost/lib
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
