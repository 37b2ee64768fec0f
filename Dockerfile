# syntax=docker/dockerfile:1
# The standard build: `docker build -t tailcar .` (needs network for the
# builder image and modules). `make image` builds the same Dockerfile
# offline by passing a local builder image as GO_IMAGE.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/tailcar . \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/loggen ./examples/loggen \
 && mkdir -p /out/certs && cp /etc/ssl/certs/ca-certificates.crt /out/certs/

# The example app image: `--target loggen`.
FROM scratch AS loggen
COPY --from=build /out/loggen /usr/local/bin/loggen
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/loggen"]

# The sidecar: one static binary, CA certificates for TLS sinks, a
# non-root numeric user, nothing else. It runs with a read-only root
# filesystem: it writes only to the shared volume (positions, heartbeat).
FROM scratch
COPY --from=build /out/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tailcar /usr/local/bin/tailcar
# On PATH, so the exec probe ["tailcar", "probe"] resolves.
ENV PATH=/usr/local/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tailcar"]
CMD ["run"]
