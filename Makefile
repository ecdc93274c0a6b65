# The two commands of the README: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
KVMLAB := $(CURDIR)/extensions/lab/kvmlab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)
# End-to-end tests mostly wait on SSH, libvirt and stage scripts: pytest-xdist workers run them side by
# side, each on a lab of its own (tests/conftest.py). One and a half per core, at least 2 (docs/performance.md).
TEST_WORKERS ?= $(shell n=$$(nproc); w=$$((n + n / 2)); echo $$((w < 2 ? 2 : w)))

.PHONY: bootstrap demo test unit sanity lint matrix integration lab-up lab-down

bootstrap:
	@./scripts/bootstrap

lab-up: bootstrap
	@$(KVMLAB) up

lab-down:
	@$(KVMLAB) down

# The main job on the lab: both clusters, example hooks that print and sleep, guests that really move.
demo: lab-up
	ansible-playbook -i "$$($(KVMLAB) inventory)" playbooks/install_example_hooks.yml
	ansible-playbook -i "$$($(KVMLAB) inventory)" playbooks/rolling_maintenance.yml -e rm_zones=z1 \
		-e rm_ping_interval=2 -e rm_report_path=$(CURDIR)/rolling-maintenance-demo.json

unit: bootstrap
	pytest tests/unit

sanity: bootstrap
	./scripts/ansible-test sanity --requirements --python 3.11

# ansible-core 2.21: sanity and unit tests; 2.18 and 2.20: imports and playbook syntax (scripts/matrix).
matrix: bootstrap
	./scripts/matrix

# ansible-lint (production profile), antsibull-docs and antsibull-changelog, from .venv-tools.
lint: bootstrap
	./scripts/lint

# Sanity first, then one pytest run (unit, lab, end to end) whose summary, with the slowest 15 tests and
# the suite's time, closes the output.
test: bootstrap
	@start=$$SECONDS; ./scripts/ansible-test sanity --requirements --python 3.11 && \
		echo "make test: sanity took $$((SECONDS - start)) s"
	./scripts/lint
	./scripts/matrix
	KVMOPS_REQUIRE_BOOTSTRAP=1 pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --durations=15 tests
