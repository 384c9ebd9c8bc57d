# Runtime images of the job ticket system, one multi-stage file, one target per process:
#   api       python -m runtime.api on port 8080 (ECS/Fargate, Kubernetes, docker run)
#   worker    python -m runtime.worker
#   lambda    awslambdaric entry point; CMD runtime.dlq_handler.handler (or runtime.api.lambda_handler.handler)
#   emulator  moto's server, for the dev Kubernetes overlay (never deployed to AWS)
#
# Networked builder (Docker, CDK assets):   docker build --target api -t job-tickets-api .
# Offline builder (this repo's podman flow): .ci/images.sh downloads wheels into .build/wheels on the host and
#   builds with --build-arg BASE_IMAGE=localhost/python-base:local --build-arg PIP_OFFLINE=1.
#
# Every input is pinned, so that rebuilding one commit for dev, staging and prod installs the same bits: the base
# image by digest (refresh: `docker buildx imagetools inspect public.ecr.aws/docker/library/python:3.11-slim`),
# every Python package, transitive ones included, by version and hash from the lock files (`make lock`), installed
# with --require-hashes (pip refuses anything unlisted or altered) and --only-binary (no build at install time).
ARG BASE_IMAGE=public.ecr.aws/docker/library/python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- dependencies: one virtualenv per dependency set, built once and copied into the final stages ----
FROM ${BASE_IMAGE} AS deps
# 1 = install only from the wheels in .build/wheels (no index); 0 = the package index, wheels as a cache.
ARG PIP_OFFLINE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# The wheel[s] glob keeps this COPY valid on a builder that downloaded no wheels.
COPY runtime/requirements.lock .ci/requirements-lambda.lock .build/wheel[s] /src/
RUN if [ "$PIP_OFFLINE" = 1 ]; then set -- --no-index; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "$@" --find-links /src \
        --require-hashes --only-binary :all: --no-deps -r /src/requirements.lock

FROM deps AS deps-lambda
ARG PIP_OFFLINE=0
# The lambda lock is the runtime lock plus the runtime interface client: only the latter is new to this venv.
RUN if [ "$PIP_OFFLINE" = 1 ]; then set -- --no-index; fi \
    && /opt/venv/bin/pip install --no-cache-dir "$@" --find-links /src \
        --require-hashes --only-binary :all: --no-deps -r /src/requirements-lambda.lock

FROM ${BASE_IMAGE} AS deps-emulator
ARG PIP_OFFLINE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Locked from moto's pin in the development requirements: the emulator image runs the version the tests run.
COPY .ci/requirements-emulator.lock .build/wheel[s] /src/
RUN if [ "$PIP_OFFLINE" = 1 ]; then set -- --no-index; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "$@" --find-links /src \
        --require-hashes --only-binary :all: --no-deps -r /src/requirements-emulator.lock

# ---- common runtime layer: non-root user, no writes to the image at run time ----
FROM ${BASE_IMAGE} AS runtime-base
# A fixed numeric uid lets Kubernetes check runAsNonRoot without resolving names.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

FROM runtime-base AS app
COPY --from=deps /opt/venv /opt/venv
COPY runtime/ /app/runtime/
# Compiled once here: the containers run with a read-only root filesystem.
RUN python -m compileall -q /app/runtime
USER 10001:10001

FROM app AS api
EXPOSE 8080
CMD ["python", "-m", "runtime.api", "--host", "0.0.0.0", "--port", "8080"]

FROM app AS worker
# The worker drains on SIGTERM (JOBS_SHUTDOWN_DEADLINE_S); SIGTERM is the default stop signal.
CMD ["python", "-m", "runtime.worker"]

FROM runtime-base AS emulator
COPY --from=deps-emulator /opt/venv /opt/venv
COPY runtime/ /app/runtime/
# The stateful stack's template, synthesized from stacks/ on the host (`.ci/images.sh template`): the dev
# overlay's provisioning Job deploys it into this emulator. The image needs no CDK, no Node.
COPY .build/templates/stateful-local.json /app/templates/stateful-local.json
USER 10001:10001
EXPOSE 5000
# moto's server installs no SIGTERM handler and would ignore SIGTERM as PID 1; SIGINT stops it at once.
STOPSIGNAL SIGINT
CMD ["python", "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"]

# Last, so that a plain `docker build .` without --target yields the Lambda image CDK assets expect.
FROM runtime-base AS lambda
COPY --from=deps-lambda /opt/venv /opt/venv
COPY runtime/ /app/runtime/
RUN python -m compileall -q /app/runtime
USER 10001:10001
# An absolute interpreter path: the entry point must not depend on the PATH the Lambda service sets.
ENTRYPOINT ["/opt/venv/bin/python", "-m", "awslambdaric"]
CMD ["runtime.dlq_handler.handler"]
