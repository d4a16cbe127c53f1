# llm-bench in a container: a multi-stage build, then a slim runtime image with the binary only
# (it needs no TLS roots or other runtime files: templates and the quickstart are built in).
#   docker build -t llm-bench .
#   docker run --rm --network host llm-bench run --target-url http://localhost:11434 --model llama3.2:1b
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# git lets build.rs record the commit in `--version` and in results ("unknown" without it).
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked && strip target/release/llm-bench

FROM debian:bookworm-slim
RUN useradd --uid 10001 --create-home --home-dir /work llmbench
COPY --from=build /src/target/release/llm-bench /usr/local/bin/llm-bench
USER 10001
WORKDIR /work
ENTRYPOINT ["llm-bench"]
CMD ["--help"]
