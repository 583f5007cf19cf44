# rgw-nats container image: a static binary on an empty base.
#   docker build -t <registry>/rgw-nats:<tag> .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...

# Build on the builder's own platform and cross-compile (no emulation).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# --build-arg GOFLAGS=-tags=nonatsserver leaves the embedded NATS server out
# (23 MiB -> 14 MiB); such an image needs NATS_URL, as Knative always sets.
ARG GOFLAGS=
# --build-arg REVISION=$(git rev-parse HEAD): the commit `rgw-nats version`
# reports (the build context holds no .git to read it from).
ARG REVISION=
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH scripts/build.sh /out/rgw-nats \
	&& mkdir -p /out/tmp && chmod 1777 /out/tmp

# No shell, no package manager, no libc: the binary, CA certificates for
# NATS over TLS, and a writable /tmp for the embedded NATS server of a bare
# `docker run` (Kubernetes sets NATS_URL and mounts the root read-only).
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tmp /tmp
COPY --from=build /out/rgw-nats /rgw-nats
# The uid/gid "nonroot" has in distroless images; any non-zero id works.
USER 65532:65532
# What func sets in the images it builds; Knative's PORT would do too.
ENV LISTEN_ADDRESS=[::]:8080
EXPOSE 8080
ENTRYPOINT ["/rgw-nats"]
CMD ["serve"]
