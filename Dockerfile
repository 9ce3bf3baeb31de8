# Chorus: one static-ish Go binary, ONNX Runtime's shared library, the demo
# model and the shipped registries, running as a non-root user.
#   docker build -t chorus .
#   docker run -p 8080:8080 chorus          # serves configs/local.yaml

# Go modules, including the tokenizers source that libtokenizers is built from.
FROM golang:1.26-bookworm AS modules
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download && \
    cp -r "$(go mod download -json github.com/daulet/tokenizers@v1.22.1 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')" /tokenizers-src && \
    chmod -R u+w /tokenizers-src

# libtokenizers.a, the Rust half of github.com/daulet/tokenizers, with
# Chorus's patch (length-aware and pair encoding; see scripts/deps.sh).
FROM rust:1-bookworm AS tokenizers
COPY --from=modules /tokenizers-src /src
COPY scripts/tokenizers/chorus.patch /chorus.patch
RUN cd /src && git apply /chorus.patch && cargo build --release && cp target/release/libtokenizers.a /libtokenizers.a

# ONNX Runtime 1.29.0 (CPU) from the npm package, checked like scripts/deps.sh does.
FROM node:20-bookworm-slim AS onnxruntime
WORKDIR /ort
COPY scripts/deps.sh /deps.sh
RUN sha=$(sed -n 's/^ORT_SHA256=//p' /deps.sh) && \
    npm pack --silent onnxruntime-node@1.29.0 && \
    tar -xzf onnxruntime-node-*.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
    mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 . && \
    echo "$sha  libonnxruntime.so.1" | sha256sum --check

FROM modules AS build
COPY . .
COPY --from=tokenizers /libtokenizers.a /usr/local/lib/
RUN CGO_LDFLAGS=-L/usr/local/lib go build -trimpath -ldflags "-s -w" -o /chorus ./cmd/chorus

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home chorus
COPY --from=build /chorus /usr/local/bin/chorus
COPY --from=onnxruntime /ort/libonnxruntime.so.1 /opt/chorus/lib/
# The repository's layout under /etc, so the shipped registries' relative
# paths (../models/…) work unchanged.
COPY configs /etc/chorus
COPY models /etc/models
COPY testdata/models/sentiment3-tiny /etc/testdata/models/sentiment3-tiny
ENV CHORUS_ORT_LIB=/opt/chorus/lib/libonnxruntime.so.1 HF_HOME=/tmp/huggingface
USER 10001
# 8080: HTTP (KServe V1, OIP V2); 8081: OIP over gRPC, as KServe.
EXPOSE 8080 8081
HEALTHCHECK --interval=5s --timeout=3s CMD ["chorus", "probe", "http://127.0.0.1:8080/v2/health/ready"]
ENTRYPOINT ["chorus"]
CMD ["serve", "--config", "/etc/chorus/local.yaml"]
