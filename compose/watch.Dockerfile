# The image of the `watch` service (docker-compose.watch.yml): `invoke watch` with the project
# installed as the development venv has it. An operator tool beside the pairs, never part of
# one; it holds no secret (the targets' come from the environment at run time).
# Built from the repository root; .dockerignore lets in only what is copied here.
FROM mt5forge/base:trixie
# why: Debian's python3 of the pinned base's suite; its updates are the security fixes we want
# hadolint ignore=DL3008
RUN set -eux; export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; apt-get install -y --no-install-recommends python3 python3-venv; \
    apt-get clean; rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mt5forge
COPY pyproject.toml README.md tasks.py mt5forge.toml ./
COPY src ./src
COPY build/bridge ./build/bridge
# The supervisor's restart defaults are read from here (one place for the numbers).
COPY build/terminal/entrypoint ./build/terminal/entrypoint
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ./build/bridge . \
    && rm -rf /root/.cache
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER 1000:1000
ENTRYPOINT ["invoke", "watch"]
