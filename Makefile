# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo test lint bench build fuzz soak

# Builds faultline (cargo shows its progress: the first build takes a minute or two) and shows
# its main job on built-in defaults (no setup, loopback only).
demo:
	cargo build
	./target/debug/faultline demo

# Installs what the tests need (tshark, nginx, fcgiwrap, chromium; dvc, git-annex, wsgidav and grpcio in venvs under target/), then runs
# every test: unit, integration, the real binary, real curl, dvc and git-annex.
test:
	bash tests/install-deps.sh
	bash tests/install-dvc.sh
	bash tests/install-annex.sh
	bash tests/install-grpc.sh
	bash tests/install-toxiproxy-clients.sh
	bash tests/install-chromium.sh
	bash tests/install-s3.sh
	cargo test --lib --bins --tests

# Style gates that CI also runs.
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Throughput and round-trip latency vs a direct connection, socat and haproxy, with and without
# capture; 9,000 idle connections under `ulimit -Sn 1024`; capture memory (see benches/RESULTS.md).
bench:
	bash benches/run.sh

# Mixed traffic with random faults at 1,000 connections/s for SOAK_MINUTES (default 30); checks
# byte-exactness, no panics, flat fds and memory; plots benches/soak.png. Not part of `make test`.
SOAK_MINUTES ?= 30
soak:
	SOAK_MINUTES=$(SOAK_MINUTES) bash benches/soak.sh

build:
	cargo build --release

# Fuzz the scenario loader, the HTTP framer, the capture reader, the engine through the HTTP/1
# session, the HTTP/2 reader, the TLS ClientHello peek, the control API's bodies and the --expect
# manifest parser for FUZZ_SECONDS each
# (cargo-fuzz on the stable toolchain, without sanitizers).
FUZZ_SECONDS ?= 20
CARGO_FUZZ_VERSION = 0.13.2
fuzz:
	cargo fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)' || cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked
	cd fuzz && for target in scenario http_framing capture_reader session h2_session h2_reader tls_client_hello api_body manifest; do \
		cargo fuzz run -s none $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
