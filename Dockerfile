# The registry frontend image: non-root, read-only friendly, no build tools at run time.
# docker build -t ghcr.io/node-registry/registry:0.1.0 \
#   --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%FT%TZ)" .
# Every Python package it builds with or installs is pinned by constraints.txt (the versions
# `make test` ran; tools/freeze_constraints.py writes it).

FROM python:3.11-slim AS build
WORKDIR /src
COPY constraints.txt ./
# The build's own requirements, pinned, installed here instead of in pip's isolated build env.
RUN pip install --no-cache-dir --constraint constraints.txt setuptools grpcio-tools mypy-protobuf
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY tools/gen_protos.py ./tools/
COPY protos ./protos
COPY registry_service ./registry_service
COPY client_sdk ./client_sdk
COPY registry_cli ./registry_cli
# The package build generates the gRPC code itself (setup.py runs tools/gen_protos.py).
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="node-registry" \
      org.opencontainers.image.description="Cluster membership on etcd: register, keep alive, and watch who joined and who left." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
RUN groupadd --gid 10001 registry \
    && useradd --uid 10001 --gid registry --no-create-home --shell /usr/sbin/nologin registry
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --constraint /tmp/constraints.txt "$(ls /wheels/*.whl)[server]" \
    && rm -rf /wheels /tmp/constraints.txt
# Tells the frontend it serves a container: it listens on 0.0.0.0 (gRPC 50051, HTTP API 8080, admin
# 9090) unless REGISTRY_LISTEN / REGISTRY_HTTP_LISTEN / REGISTRY_ADMIN_LISTEN say otherwise
# (registry_service/host.py).
ENV NODEREGISTRY_CONTAINER=1
USER 10001:10001
EXPOSE 50051 8080 9090
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9090/healthz').status != 200)"]
ENTRYPOINT ["noderegistry"]
CMD ["serve"]
