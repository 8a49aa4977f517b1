# Two commands matter: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Tests run against the machine's PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run install install-dev test lint format bench messages screenshots clean reliability

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt package.json $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

# Development, said explicitly: the settings' default is production.
run: export DEBUG ?= true
# The sandbox plays the SMS gateway and e-mails are written to var/mail: both are listed on
# http://127.0.0.1:8000/sandbox/messages/.
run: export SMS_GATEWAY_URL ?= http://127.0.0.1:8000/sandbox/sms/
run: export EMAIL_BACKEND ?= django.core.mail.backends.filebased.EmailBackend
# MoMo and ZaloPay are offered against the sandbox's wallets (http://127.0.0.1:8000/sandbox/),
# with development keys that production refuses.
run: export PARTNER_MOMO_SECRET ?= dev-momo-secret-key-0123456789abcdef
run: export PARTNER_MOMO_ACCESS_KEY ?= DEVMOMOACCESS1
run: export PARTNER_MOMO_PARTNER_CODE ?= MOMODEV2026
run: export PARTNER_MOMO_API_URL ?= http://127.0.0.1:8000/sandbox/momo
run: export PARTNER_ZALOPAY_KEY1 ?= dev-zalopay-key1-0123456789abcdef
run: export PARTNER_ZALOPAY_KEY2 ?= dev-zalopay-key2-0123456789abcdef
run: export PARTNER_ZALOPAY_APP_ID ?= 2553
run: export PARTNER_ZALOPAY_API_URL ?= http://127.0.0.1:8000/sandbox/zalopay
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --if-empty
	$(BIN)/honcho start -f Procfile

test: install-dev
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/pytest $(PYTEST_ARGS)
	# The billing import's rules again on SQLite, the embedded default's database.
	env -u REDIS_URL -u CELERY_BROKER_URL DATABASE_URL=sqlite:///$(CURDIR)/var/test-import.sqlite3 \
	$(BIN)/pytest -p no:cacheprovider tests/billing/test_import_bills.py

# Only the reliability suite (duplicates, faults, hostile input, security), then its figures
# are written into docs/reliability.md (failures included); exits with pytest's status. Fault
# tests start their own Redis and workers.
reliability: install-dev
	rm -rf var/reliability/figures
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/pytest tests/reliability --junitxml=var/reliability/junit.xml $(PYTEST_ARGS); \
	status=$$?; $(BIN)/python -m tests.reliability.report && exit $$status

screenshots: install-dev
	UPDATE_SCREENSHOTS=1 DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/pytest tests/browser tests/console/test_browser.py $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The lookup benchmark's load generator is Debian's wrk, installed here when it is missing.
bench: install-dev
	@command -v wrk >/dev/null 2>&1 || apt-get install -y wrk >/dev/null 2>&1 \
		|| (apt-get update >/dev/null && apt-get install -y wrk >/dev/null) \
		|| echo "warning: could not install wrk; the lookup benchmark will fail" >&2
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal_bench} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/12} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/13} \
	$(BIN)/python -m bench

messages: export DEBUG ?= true
messages: install-dev
	$(BIN)/python manage.py makemessages -l vi --no-obsolete -i ".venv/*" -i "var/*" \
		-i "node_modules/*" -i "bench/*" -i "tests/*" -i "docs/*" -i "locale/*"
	msgfmt --check -o locale/vi/LC_MESSAGES/django.mo locale/vi/LC_MESSAGES/django.po

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
