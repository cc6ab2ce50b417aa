# The image of the `watch` service (docker-compose.watch.yml): `invoke watch` with the project
# installed as the development venv has it. An operator tool beside the pairs, never part of
# one; it holds no secret (the targets' come from the environment at run time).
# Built from the repository root; .dockerignore lets in only what is copied here.
# Behind a TLS-intercepting proxy, put its CA bundle in compose/build-ca.pem (git-ignored): only
# the venv stage sees it, as the project's images do with [build] ca_bundle.
FROM mt5forge/base:trixie AS python
# why: Debian's python3 of the pinned base's suite; its updates are the security fixes we want
# hadolint ignore=DL3008
RUN set -eux; export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; apt-get install -y --no-install-recommends python3 python3-venv; \
    apt-get clean; rm -rf /var/lib/apt/lists/*

FROM python AS venv
# The Dockerfile itself makes the pattern match when there is no CA bundle.
COPY compose/watch.Dockerfile compose/build-ca.pe[m] /build-ca/
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY build/bridge ./build/bridge
RUN set -eux; if [ -s /build-ca/build-ca.pem ]; then export PIP_CERT=/build-ca/build-ca.pem; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir ./build/bridge .

FROM python
COPY --from=venv /opt/venv /opt/venv
WORKDIR /opt/mt5forge
COPY tasks.py mt5forge.toml ./
# The supervisor's restart defaults are read from here (one place for the numbers).
COPY build/terminal/entrypoint ./build/terminal/entrypoint
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
ENTRYPOINT ["invoke", "watch"]
