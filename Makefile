# txclass — thin wrappers over scripts/.
.PHONY: demo test bench setup install clean

demo:            ## set-up if needed, throwaway cluster, classify the Oxford descriptors, stop
	bash scripts/demo.sh

test:            ## every test tier: cargo test, #[pg_test], pg_regress, parity with Python ORT
	bash scripts/test.sh

bench:           ## benchmarks → BENCHMARKS.md
	bash bench/run.sh

setup:           ## idempotent set-up: packages, cargo-pgrx, ONNX Runtime, build + install
	bash scripts/setup.sh

install:
	bash scripts/install.sh

clean:
	rm -rf build target
