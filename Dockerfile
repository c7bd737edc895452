# The registry frontend image: non-root, read-only friendly, no build tools at run time.
# docker build -t ghcr.io/node-registry/registry:0.1.0 .

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY registry_service ./registry_service
COPY client_sdk ./client_sdk
COPY registry_cli ./registry_cli
COPY tools ./tools
RUN pip install --no-cache-dir grpcio-tools mypy-protobuf \
    && python tools/gen_protos.py \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --gid 10001 registry \
    && useradd --uid 10001 --gid registry --no-create-home --shell /usr/sbin/nologin registry
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 50051 9090
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9090/healthz').status != 200)"]
ENTRYPOINT ["noderegistry"]
CMD ["serve"]
