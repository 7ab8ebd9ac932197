# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo test lint bench build fuzz

# Builds faultline (cargo shows its progress: the first build takes a minute or two) and shows
# its main job on built-in defaults (no setup, loopback only).
demo:
	cargo build
	./target/debug/faultline demo

# Installs what the tests need (tshark; dvc, git-annex and wsgidav in venvs under target/), then runs
# every test: unit, integration, the real binary, real curl, dvc and git-annex.
test:
	bash tests/install-deps.sh
	bash tests/install-dvc.sh
	bash tests/install-annex.sh
	bash tests/install-s3.sh
	cargo test --lib --bins --tests

# Style gates that CI also runs.
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Throughput and round-trip latency vs a direct connection, socat and haproxy (see benches/RESULTS.md).
bench:
	bash benches/run.sh

build:
	cargo build --release

# Fuzz the scenario loader, the HTTP framer, the capture reader, the engine through the HTTP/1
# session, the HTTP/2 reader and the TLS ClientHello peek for FUZZ_SECONDS each
# (cargo-fuzz on the stable toolchain, without sanitizers).
FUZZ_SECONDS ?= 20
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd fuzz && for target in scenario http_framing capture_reader session h2_reader tls_client_hello; do \
		cargo fuzz run -s none $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
