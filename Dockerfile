# mogate's container image: a static binary on distroless, run as a
# non-root user, with no shell and no package manager in the image.
#
#   docker build --build-arg VERSION=$(make -s version) -t mogate .
#   docker run -v $PWD/mogate.yaml:/etc/mogate/mogate.yaml:ro -p 8080:8080 mogate
#
# The configuration must listen on 0.0.0.0:8080 (not loopback) and, with
# store: memory, keep data_dir on a volume writable by uid 65532
# (deploy/compose.yaml runs two replicas on Redis instead).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mogate ./cmd/mogate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mogate /mogate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/mogate"]
CMD ["serve", "--config", "/etc/mogate/mogate.yaml"]
