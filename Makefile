# Every target installs what it needs first (see scripts/dev.sh).
.PHONY: run test lint check install

run:  ## start the service on http://127.0.0.1:8000 (embedded engine unless MONGODB_URI is set)
	@scripts/dev.sh run

test:  ## the whole test suite, against the embedded engine and a real redis-server
	@scripts/dev.sh test

lint:  ## ruff (lint and format), mypy and the layer rule (import-linter)
	@scripts/dev.sh lint

check: lint test

install:
	@scripts/dev.sh install
