# A slim, non-root image of the canary controller and CLI.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY canary ./canary
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["canary"]
CMD ["--help"]
