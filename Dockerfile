# edged in a container: a static binary on an empty (scratch) base, run as
# a non-root user, with the disk tier on a volume. docs/operations.md
# ("Running in a container") says how to run it; build it with
#
#   docker build -t edged \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" \
#     --build-arg BUILD_DATE="$(git log -1 --format=%cI)" .
#
# (or buildah bud / podman build with the same arguments). The build
# arguments end up in `edged -version` and edged_build_info: the build
# context has no .git (.dockerignore), so Go cannot stamp them itself.

# The Go version is go.mod's `go` line (a test keeps them equal).
ARG GO_VERSION=1.26.0

FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
ARG BUILD_DATE=""
# These flags are the ones cmd/edged's TestStaticBinary builds with.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}" \
      -o /out/usr/local/bin/edged ./cmd/edged \
 && mkdir -p /out/etc/ssl/certs /out/var/cache/edged \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'edged:x:65532:65532:edged:/var/cache/edged:/sbin/nologin' > /out/etc/passwd \
 && echo 'edged:x:65532:' > /out/etc/group \
 && chown 65532:65532 /out/var/cache/edged \
 && chmod 0750 /out/var/cache/edged

FROM scratch
# One layer: the binary, CA certificates for TLS origins and NATS, the
# user's passwd and group entries, and the cache directory owned by it
# (a new volume starts as a copy of it, owner included).
COPY --from=build /out/ /
USER 65532:65532
VOLUME /var/cache/edged
# 8080: the edge listener; 9090: the admin listener (/metrics, /healthz,
# the purge API). Publish 9090 only on a private network.
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/edged", "healthcheck", "-url", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/edged"]
# With no -origin and no -config edged runs its built-in sample origin.
# Arguments after the image name replace this whole list: repeat these
# flags with yours (-origin http://..., or -config on a mounted file);
# see docs/operations.md.
CMD ["-listen", "0.0.0.0:8080", "-admin", "0.0.0.0:9090", "-data", "/var/cache/edged"]
