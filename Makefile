# txclass — thin wrappers over scripts/.
.PHONY: demo test bench setup install package clean

demo:            ## set-up if needed, throwaway cluster, classify the Oxford descriptors, stop
	bash scripts/demo.sh

test:            ## every test tier on PostgreSQL 15 and 18: cargo test, #[pg_test], pg_regress, parity, ..., upgrade, package
	bash scripts/test.sh

bench:           ## benchmarks → BENCHMARKS.md
	bash bench/run.sh

setup:           ## idempotent set-up: packages, cargo-pgrx, ONNX Runtime, build + install
	bash scripts/setup.sh

install:         ## build + install into the PostgreSQL of $PG_CONFIG (default Debian's 15)
	bash scripts/install.sh

package:         ## build/package/: postgresql-15-txclass_<version>_amd64.deb and the PostgreSQL 18 tarball
	bash scripts/package.sh

clean:
	rm -rf build target
