# syntax=docker/dockerfile:1
# The one Profilis image: the operator (`profilis-operator`), the collector sidecar
# (`profilis-sidecar`) and the agent installer (`profilis-agent install DIR`, run as the init
# container of injected pods). The Helm chart runs it in all three roles.
#
#   docker build -t profilis/profilis:$(python3 -c 'import runpy; print(runpy.run_path("library/profilis/_version.py")["__version__"])') .
#
# The base is pinned by tag (a digest cannot be resolved offline); both stages use the same one,
# so the virtualenv copied from the build stage finds the same interpreter at the same path.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: a self-contained venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (see .dockerignore): a change to the tests or the chart does
# not invalidate this layer.
COPY pyproject.toml README.md ./
COPY library ./library
COPY sidecar ./sidecar
COPY operator ./operator
# The exact versions the test suite ran with (scripts/image_constraints.py): pyproject.toml's
# ranges say what may work, this says what the image runs. pip would install a dependency
# missing from it unpinned, so tests/chart/test_image_constraints.py checks that none is.
COPY docker/constraints.txt ./docker/constraints.txt
# A regular (non-editable) install: the image must not depend on /src. The extras are the
# operator's and the sidecar's dependencies; the agent payload needs none (standard library).
# pip itself is removed afterwards: nothing installs packages at run time.
RUN python -m venv /opt/profilis \
    && /opt/profilis/bin/pip install --constraint docker/constraints.txt ".[operator,sidecar]" \
    && /opt/profilis/bin/pip check \
    && /opt/profilis/bin/python -m pip uninstall --yes pip setuptools
# Byte-code compiled now: the root filesystem is read-only at run time.
RUN python -m compileall -q /opt/profilis

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION=unknown
LABEL org.opencontainers.image.title="profilis" \
      org.opencontainers.image.description="Profilis operator, collector sidecar and agent installer" \
      org.opencontainers.image.source="https://github.com/profilis/profilis" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
# 65532 is the uid/gid the operator writes into injected containers' securityContext
# (profilis_operator.injection) and the chart into its own pods: distroless' "nonroot".
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nonroot
COPY --from=build /opt/profilis /opt/profilis
ENV PATH=/opt/profilis/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Fail the build, not the first pod, when a console script is missing or cannot import.
RUN profilis-operator --help >/dev/null \
    && profilis-sidecar --help >/dev/null \
    && profilis-agent --help >/dev/null
# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
WORKDIR /
# No ENTRYPOINT: every role sets its own command (chart, injected pod spec).
CMD ["profilis-operator", "--help"]
