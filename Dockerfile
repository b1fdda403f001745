# The mkg application images, from one dependency layer:
#   target worker   the extractor worker (`mkg worker`), serving /metrics, /livez, /readyz on 9100
#   target airflow  Airflow 3 (api-server, scheduler, dag-processor, triggerer) with our DAGs
#
# Built by `python -m deploy.images` (BuildKit: `docker buildx`, or DOCKER_BUILDKIT=1 with a
# 20.10 engine's own client). Layers run from slow-changing to fast-changing: OS packages,
# then the pinned Python dependencies read from pyproject.toml alone, then our source, so a
# code change rebuilds only the last, small layer. Models ship inside PyPI packages and our
# own package (extractors/shipped), so nothing is downloaded at run time (HF_HUB_OFFLINE=1).
#
# A corporate or sandbox CA for pip is an optional build secret, never part of an image:
#   --secret id=pip_cert,src=/path/to/ca-bundle.crt
ARG BASE_IMAGE=mkg/debian:bookworm

FROM ${BASE_IMAGE} AS python
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv \
 && useradd --uid 50000 --gid 0 --home-dir /var/lib/mkg --no-create-home --shell /usr/sbin/nologin mkg \
 && install -d -o 50000 -g 0 -m 2775 /var/lib/mkg /var/lib/mkg/models /var/lib/mkg/labelled \
      /var/lib/mkg/tasks /var/lib/mkg/work /var/lib/mkg/observations /var/lib/mkg/archive
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
RUN --mount=type=secret,id=pip_cert --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && pip install --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1

# Our package as a wheel (shipped extractor weights included), built once for both targets.
FROM python AS wheel
COPY README.md pyproject.toml /src/
COPY mkg_common /src/mkg_common
COPY graph_store /src/graph_store
COPY extractors /src/extractors
COPY continual /src/continual
COPY pipeline /src/pipeline
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /src

# Core dependencies (torch, transformers, spaCy, the model packages): the big layer.
FROM python AS deps
COPY pyproject.toml deploy/requirements.py /tmp/build/
RUN --mount=type=secret,id=pip_cert --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && python /tmp/build/requirements.py /tmp/build/pyproject.toml > /tmp/build/core.txt \
 && pip install -r /tmp/build/core.txt

FROM deps AS worker
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels pip install --no-deps /wheels/*.whl
USER 50000:0
WORKDIR /var/lib/mkg
EXPOSE 9100
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["mkg", "worker", "--metrics-port", "9100"]

# Airflow and the official Neo4j and Kafka providers on top of the same dependency layer,
# constrained to the core pins so nothing (torch above all) moves.
FROM deps AS airflow-deps
RUN --mount=type=secret,id=pip_cert --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && python /tmp/build/requirements.py /tmp/build/pyproject.toml --extra airflow > /tmp/build/airflow.txt \
 && pip install -r /tmp/build/airflow.txt -c /tmp/build/core.txt

FROM airflow-deps AS airflow
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels pip install --no-deps /wheels/*.whl
COPY --chown=root:root dags /opt/mkg/dags
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mkg/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=false
RUN install -d -o 50000 -g 0 -m 2775 /opt/airflow /opt/airflow/logs \
 && install -d -o 50000 -g 0 -m 0700 /opt/airflow/auth
USER 50000:0
WORKDIR /opt/airflow
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
