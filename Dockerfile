# syntax=docker/dockerfile:1
# The stream-scorer image: `stream-scorer run` by default, `stream-scorer labels` (or any command) as its arguments.
#   docker build -t stream-scorer:0.1.0 .
#   docker run --rm -p 9464:9464 -v "$PWD/settings:/etc/stream-scorer:ro" \
#     -e STREAM_SCORER_CONFIG=/etc/stream-scorer/settings.toml stream-scorer:0.1.0
# deploy/helm/stream-scorer runs it on Kubernetes (docs/operations.md, "Kubernetes").

ARG PYTHON=python:3.11-slim

# --- build: the package's wheel and the wheels of its dependencies ---------------------------------------------
FROM ${PYTHON} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY stream_scorer/ stream_scorer/
RUN pip wheel --wheel-dir /dist .
# The native decoder (native/: Rust, PyO3, arrow-avro) as an abi3 wheel beside it: Rust from the official
# image, a C linker from Debian, maturin from PyPI. The runtime stage installs the wheel, not the toolchain.
COPY --from=rust:1-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY native/ native/
RUN pip install "maturin>=1.16,<2" && maturin build --release --locked --manifest-path native/Cargo.toml --out /dist

# --- runtime: the wheels installed, no compiler, no sources, not root ------------------------------------------
FROM ${PYTHON} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-index --find-links /dist stream-scorer stream-scorer-native \
 && groupadd --system --gid 10001 stream-scorer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /opt/stream-scorer --no-create-home stream-scorer
# The wheel holds no schemas: the package reads prediction.avsc, label.avsc and score.avsc from schemas_dir.
COPY schemas/ /opt/stream-scorer/schemas/
ENV STREAM_SCORER_SCHEMAS_DIR=/opt/stream-scorer/schemas \
    STREAM_SCORER_METRICS__HOST=0.0.0.0
WORKDIR /opt/stream-scorer
USER 10001:10001
# metrics.port: 9464 for `run`; the label flow is given 9465 (STREAM_SCORER_METRICS__PORT) by the compose file
# and the Helm chart. /healthz and /readyz are served there too; Kubernetes probes them (no HEALTHCHECK here).
EXPOSE 9464 9465
ENTRYPOINT ["stream-scorer"]
CMD ["run"]
