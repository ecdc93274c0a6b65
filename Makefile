# The two commands of the README: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
KVMLAB := $(CURDIR)/tests/lab/kvmlab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)

.PHONY: bootstrap demo test unit sanity integration lab-up lab-down

bootstrap:
	@./scripts/bootstrap

lab-up: bootstrap
	@$(KVMLAB) up

lab-down:
	@$(KVMLAB) down

demo: lab-up
	ansible-playbook -i "$$($(KVMLAB) inventory)" playbooks/stage_demo.yml

unit: bootstrap
	pytest tests/unit

sanity: bootstrap
	./scripts/ansible-test sanity --requirements --python 3.11

# Sanity first, then one pytest run (unit, lab, end to end) whose summary closes the output.
test: bootstrap
	./scripts/ansible-test sanity --requirements --python 3.11
	pytest -p no:cacheprovider tests
