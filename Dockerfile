# A slim, non-root image of the canary controller and CLI; it runs `canary run` by default.
# Build: docker build -t canary:0.1.0 .   (deploy/controller.yaml names that placeholder)
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY canary ./canary
# Only canary's own dependencies: neither the dev extra nor the demo's Envoy (about 100 MB). Bytecode is compiled here because the
# controller runs with a read-only root filesystem and could not write it later.
RUN pip install --prefix=/install --compile .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # Nothing under / is writable in the cluster; /tmp is an emptyDir there.
    HOME=/tmp
COPY --from=build /install /usr/local
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["canary"]
CMD ["run"]
