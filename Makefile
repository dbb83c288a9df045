# Tradewind — build, run and check the deployment artefacts.
# `make help` lists the targets.

PYTHON        ?= .venv/bin/python
VENV_BIN      ?= $(dir $(PYTHON))
# The locks are compiled under the oldest Python we support (Debian bookworm's
# 3.11.2): pip-compile keeps only the pins whose markers hold for the Python it
# runs on, and async-timeout is needed below 3.11.3 only.
LOCK_PYTHON   ?= /usr/bin/python3.11
LOCK_VENV     ?= .venv-lock
PIPTOOLS_COMPILE   ?= $(LOCK_VENV)/bin/pip-compile
COMPOSE       ?= docker-compose
IMAGE         ?= tradewind:local
VERSION       ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REVISION      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
SECRETS_DIR   ?= ./secrets
OVERLAY       ?= dev
OFFLINE_ENV    = TRADEWIND_FEED__WS_URLS='{"binance":"ws://fake-exchange:9443"}' \
                 TRADEWIND_FEED__REST_URLS='{"binance":"http://fake-exchange:9443"}' \
                 $(OFFLINE_RETENTION)
# The fake exchange replays a 2024 recording: retention by event time would
# drop what it stores at db_writer's next maintenance pass, so it is off.
OFFLINE_RETENTION = TRADEWIND_RETENTION_QUOTES_DAYS=0 TRADEWIND_RETENTION_BOOK_DELTAS_DAYS=0 \
                    TRADEWIND_RETENTION_TRADES_DAYS=0 TRADEWIND_RETENTION_BARS_DAYS=0
# LAYOUT=grouped: signal, risk and execution in one process (the Compose service
# orderpath, profile grouped) instead of three; docker-compose.grouped.yml parks
# the three. `make up` and `make up-offline` first remove the containers of the
# other layout, so switching never runs both order paths at once.
LAYOUT        ?= five
ifeq ($(LAYOUT),grouped)
LAYOUT_FLAGS   = -f docker-compose.yml -f docker-compose.grouped.yml --profile grouped
ORDER_PATH     = orderpath
OTHER_LAYOUT   = $(COMPOSE) rm -s -f signal risk execution
else ifeq ($(LAYOUT),five)
LAYOUT_FLAGS   =
ORDER_PATH     = signal risk execution
OTHER_LAYOUT   = $(COMPOSE) --profile grouped rm -s -f orderpath
else
$(error LAYOUT must be five or grouped, not '$(LAYOUT)')
endif
LOCK_FLAGS     = --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
                 --no-emit-index-url --no-emit-find-links

# Every image tag/digest (Dockerfile base, Compose, Kubernetes): one file.
include deploy/images.env
export PYTHON_BASE REDIS_IMAGE POSTGRES_IMAGE PROMETHEUS_IMAGE GRAFANA_IMAGE

.DEFAULT_GOAL := help
.PHONY: help lock image secrets up up-offline down logs ps audit \
        deploy-tools deploy-checks test-deploy k8s-sync k8s-render k8s-dry-run mutation

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

lock: ## regenerate requirements.lock and requirements-dev.lock (hashes) from pyproject.toml, under LOCK_PYTHON
	[ -x $(PIPTOOLS_COMPILE) ] || { $(LOCK_PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q pip-tools; }
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(PIPTOOLS_COMPILE) $(LOCK_FLAGS) --output-file requirements.lock pyproject.toml
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(PIPTOOLS_COMPILE) $(LOCK_FLAGS) --extra dev --output-file requirements-dev.lock pyproject.toml

image: ## build the one image of the five services
	docker build --pull --build-arg PYTHON_BASE=$(PYTHON_BASE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) -t $(IMAGE) .

secrets: ## create random local secret files for Compose under $(SECRETS_DIR) (kept if present)
	@mkdir -p $(SECRETS_DIR) && chmod 700 $(SECRETS_DIR)
	@printf '*\n' > $(SECRETS_DIR)/.gitignore
	@for s in postgres_password control_token order_key grafana_admin_password \
	          redis_ws_password redis_signal_password redis_risk_password redis_execution_password \
	          redis_db_writer_password redis_operator_password redis_orderpath_password \
	          redis_admin_password; do \
	  [ -s $(SECRETS_DIR)/$$s ] || $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $(SECRETS_DIR)/$$s; \
	done
	@PYTHONPATH=src $(PYTHON) -m tradewind.acl --prefix "$${TRADEWIND_BUS__PREFIX:-tw}" \
	  --secrets-dir $(SECRETS_DIR) > $(SECRETS_DIR)/redis_acl.new && mv $(SECRETS_DIR)/redis_acl.new $(SECRETS_DIR)/redis_acl
	@for s in exchange_api_key exchange_api_secret exchange_api_passphrase; do \
	  [ -s $(SECRETS_DIR)/$$s ] || printf 'paper-no-key\n' > $(SECRETS_DIR)/$$s; \
	done
	@chmod 644 $(SECRETS_DIR)/*_password $(SECRETS_DIR)/*_token $(SECRETS_DIR)/order_key \
	  $(SECRETS_DIR)/redis_acl $(SECRETS_DIR)/exchange_api_*
	@echo "secrets in $(SECRETS_DIR) (directory 0700; put real exchange keys in exchange_api_key/_secret)"

up: secrets ## start the stack against the live exchanges (LAYOUT=grouped: the order path in one process)
	$(OTHER_LAYOUT)
	$(COMPOSE) $(LAYOUT_FLAGS) up -d

up-offline: secrets ## start the stack with the fake exchange (profile offline), no internet needed (LAYOUT=grouped too)
	$(OTHER_LAYOUT)
	$(OFFLINE_ENV) $(COMPOSE) $(LAYOUT_FLAGS) --profile offline up -d

down: ## stop the stack, either layout (volumes are kept; add `-v` by hand to drop data)
	$(COMPOSE) --profile offline --profile grouped down

logs: ## follow the services' logs (LAYOUT=grouped: orderpath instead of signal, risk, execution)
	$(COMPOSE) $(LAYOUT_FLAGS) logs -f --tail=100 ws $(ORDER_PATH) db_writer

ps: ## show the containers and their health, either layout
	$(COMPOSE) --profile offline --profile grouped ps

audit: ## pip-audit both locks --strict, and scan IMAGE with Trivy (needs advisory databases: network)
	bash .ci/audit.sh $(IMAGE)

deploy-tools: ## install the deployment checkers (apt + pip into the venv of PYTHON)
	bash .ci/install_deploy_tools.sh $(patsubst %/bin/,%,$(VENV_BIN))

deploy-checks: ## hadolint, checkov, yamllint, compose, kustomize, kubernetes-validate, shellcheck, promtool, PowerShell parse
	bash .ci/deploy_checks.sh

test-deploy: ## the deployment tests (pytest tests/deploy)
	$(PYTHON) -m pytest tests/deploy -q

mutation: ## mutation score of risk/, portfolio, execution (state, book, paper) per file; slow, pre-release
	$(PYTHON) scripts/mutation.py $(MUTATION_ARGS)

k8s-sync: ## copy schema.sql, alert rules and dashboards into k8s/base/files/
	bash k8s/base/sync-files.sh

k8s-render: k8s-sync ## render an overlay (OVERLAY=dev|prod) to stdout
	kubectl kustomize k8s/overlays/$(OVERLAY)

k8s-dry-run: ## print the deployment plan of an overlay without a cluster
	bash k8s/deploy-k8s.sh --overlay $(OVERLAY) --dry-run
