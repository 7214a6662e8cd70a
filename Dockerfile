# hothost's container image.
#
# Go loads a plugin only into a host built with exactly the same toolchain,
# flags and shared packages, so one builder stage builds both, through the
# Makefile targets the tests run (make build, make plugins). Build plugin
# versions for a running image with the same builder stage (README: plugins
# in CI):
#
#   docker build -t hothost .
#   docker build --target builder -t hothost-builder .
#
# The Go version is go.mod's toolchain line; the runtime is the builder's
# Debian release, so the host finds the glibc it was linked against.
FROM golang:1.26.8-bookworm AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build
RUN make plugins PLUGIN_OUT=/out/plugins

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 hothost \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hothost --shell /usr/sbin/nologin hothost \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/hothost /var/lib/hothost/data /var/lib/hothost/shm
COPY --from=builder /src/bin/hothost /src/bin/hotctl /usr/local/bin/
# The example plugins: a pristine copy for Kubernetes' init container to
# seed a fresh volume from, and the default plugin directory, which a new
# Docker volume mounted on /var/lib/hothost/data starts with.
COPY --from=builder --chown=10001:10001 /out/plugins/ /opt/hothost/plugins/
COPY --from=builder --chown=10001:10001 /out/plugins/ /var/lib/hothost/data/plugins/
USER 10001:10001
WORKDIR /var/lib/hothost
EXPOSE 7070 7071
ENTRYPOINT ["/usr/local/bin/hothost"]
# The segment goes to the container's /dev/shm (a tmpfs; size it with
# --shm-size), or to a tmpfs directory of the machine mounted there, which
# outlives the container (docs/OPERATIONS.md). hotctl finds the admin socket
# from this working directory: docker exec CONTAINER hotctl status
CMD ["-listen=0.0.0.0:7070", "-data=/var/lib/hothost/data", "-plugins=/var/lib/hothost/data/plugins", "-shm-dir=/dev/shm"]
