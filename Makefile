# itsmd — `make run` runs the daemon, `make test` runs the suite (both set up .venv);
# `make install` installs it as a systemd service (see below).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck format bench bench-smoke clean install uninstall

# setup.py and the C source too: the editable install compiles the fingerprint hash.
$(STAMP): pyproject.toml setup.py daemon/itsmd/correlation/_fnv.c
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/itsmd run --config itsmd.example.yml --migrate

# The in-process tests on every core (pytest-xdist), then the end-to-end ones, which
# start real daemons, Alertmanagers and browsers, one at a time.
test: $(STAMP) lint typecheck
	$(BIN)/pytest -m 'not e2e' -n auto
	$(BIN)/pytest -m e2e

test-fast: $(STAMP)
	$(BIN)/pytest -m 'not e2e' -x -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=daemon:connectors $(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache itsmd.db itsmd.db-wal itsmd.db-shm
	rm -f daemon/itsmd/correlation/_fnv.*.so

bench: $(STAMP)
	$(BIN)/pytest bench/micro --benchmark-only -p no:cacheprovider
	$(BIN)/python bench/run.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/console.py --runs 1
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/report.py --runs 3

bench-smoke: $(STAMP)
	$(BIN)/pytest bench/micro --benchmark-disable -q -p no:cacheprovider
	$(BIN)/python bench/run.py --smoke
	$(BIN)/python bench/storage.py --smoke --store sqlite --incidents 500 --alerts 5000 --baseline-s 2

# --- installing as a service (docs/operations.md, "Installing as a service") ---------------
# `sudo make install` puts itsmd in a virtualenv of its own and beside it what systemd needs;
# `sudo make uninstall` takes that away and keeps the config and the data. Variables:
#   PREFIX       the virtualenv itsmd runs from                       /opt/itsmd
#   BINDIR       the `itsmd` command, a symlink into PREFIX           /usr/bin
#   UNITDIR      itsmd.service (its ExecStart= names BINDIR)          /usr/lib/systemd/system
#   SYSUSERSDIR  itsmd.conf: the itsmd system user                    /usr/lib/sysusers.d
#   TMPFILESDIR  itsmd.conf: /var/lib/itsmd, who may read itsmd.yml   /usr/lib/tmpfiles.d
#   SYSCONFDIR   itsmd/itsmd.yml and itsmd/rules/ when absent         /etc
#   DESTDIR      a staging root (packages, tests): the tree under it works once copied to /
#   PYTHON       the interpreter of the virtualenv, 3.11 or later     python3
PREFIX ?= /opt/itsmd
BINDIR ?= /usr/bin
UNITDIR ?= /usr/lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
SYSCONFDIR ?= /etc
DESTDIR ?=
STAGED := $(DESTDIR)$(PREFIX)
CONFDIR := $(DESTDIR)$(SYSCONFDIR)/itsmd
# Paths the shipped files name, rewritten when the variables differ.
SUBST := sed -e 's|/usr/bin/itsmd|$(BINDIR)/itsmd|g' -e 's|/etc/itsmd/|$(SYSCONFDIR)/itsmd/|g'
# The example config as a service's: the store in the unit's StateDirectory, not the
# working directory; `rules: rules/` stays, relative to the config: SYSCONFDIR/itsmd/rules.
CONFIG_SUBST := sed \
	-e 's|^\# itsmd example configuration: .*|\# itsmd configuration, installed by `make install` (from itsmd.example.yml).|' \
	-e 's|^database: .*|database: sqlite+aiosqlite:////var/lib/itsmd/itsmd.db   \# the state directory|'

install:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "make install: $(PYTHON) is older than 3.11: make install PYTHON=python3.11 (or later)" >&2; \
	  exit 1; }
	test -x $(STAGED)/bin/python || $(PYTHON) -m venv $(STAGED)
	$(STAGED)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade .
# A virtualenv names its own path (script shebangs, activate, pyvenv.cfg): under DESTDIR
# they name PREFIX instead, where the tree will be. (Bytecode and RECORD keep the staging
# path: Python fixes the file names of code it loads, and pip reads RECORD as relative.)
	@if [ -n "$(DESTDIR)" ]; then \
	  echo "naming $(PREFIX) instead of $(STAGED) in $(STAGED)/bin and pyvenv.cfg"; \
	  grep -rlIF '$(STAGED)' $(STAGED)/bin $(STAGED)/pyvenv.cfg \
	    | xargs -r sed -i 's|$(STAGED)|$(PREFIX)|g'; \
	fi
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(TMPFILESDIR)
	ln -sfn $(PREFIX)/bin/itsmd $(DESTDIR)$(BINDIR)/itsmd
	$(SUBST) systemd/itsmd.service > $(DESTDIR)$(UNITDIR)/itsmd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/itsmd.service
	install -m 0644 systemd/itsmd.sysusers $(DESTDIR)$(SYSUSERSDIR)/itsmd.conf
	$(SUBST) systemd/itsmd.tmpfiles > $(DESTDIR)$(TMPFILESDIR)/itsmd.conf
	chmod 0644 $(DESTDIR)$(TMPFILESDIR)/itsmd.conf
	install -d -m 0755 $(CONFDIR)
	install -m 0644 systemd/itsmd.env.example $(CONFDIR)/itsmd.env.example
# A config that is there is the operator's: never overwritten, nor its rules. Its group
# is itsmd once that exists (until then, systemd-tmpfiles sets it: itsmd.tmpfiles).
	@if [ -e $(CONFDIR)/itsmd.yml ]; then \
	  echo "kept $(CONFDIR)/itsmd.yml"; \
	else \
	  if [ ! -e $(CONFDIR)/rules ]; then \
	    echo "install -m 0644 rules/*.yml $(CONFDIR)/rules/"; \
	    install -d -m 0755 $(CONFDIR)/rules && install -m 0644 rules/*.yml $(CONFDIR)/rules/; \
	  fi; \
	  echo "install -m 0640 itsmd.example.yml $(CONFDIR)/itsmd.yml (a service's database)"; \
	  $(CONFIG_SUBST) itsmd.example.yml > $(CONFDIR)/itsmd.yml.new && \
	  chmod 0640 $(CONFDIR)/itsmd.yml.new && mv $(CONFDIR)/itsmd.yml.new $(CONFDIR)/itsmd.yml; \
	  if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && getent group itsmd >/dev/null; then \
	    chown root:itsmd $(CONFDIR)/itsmd.yml; \
	  fi; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  echo; \
	  echo "itsmd is installed in $(PREFIX). To start it:"; \
	  echo "  systemd-sysusers $(SYSUSERSDIR)/itsmd.conf  # the itsmd user and group"; \
	  echo "  systemd-tmpfiles --create $(TMPFILESDIR)/itsmd.conf  # /var/lib/itsmd"; \
	  echo "  itsmd config check $(SYSCONFDIR)/itsmd/itsmd.yml"; \
	  echo "  systemctl daemon-reload"; \
	  echo "  systemctl enable --now itsmd"; \
	  echo "After an upgrade instead:"; \
	  echo "  systemctl daemon-reload && systemctl stop itsmd"; \
	  echo "  runuser -u itsmd -- itsmd db upgrade --config $(SYSCONFDIR)/itsmd/itsmd.yml"; \
	  echo "  systemctl start itsmd"; \
	fi

uninstall:
# Only a virtualenv with itsmd in it is removed: a mistyped PREFIX removes nothing.
	@if [ -e $(STAGED) ]; then \
	  if [ -f $(STAGED)/pyvenv.cfg ] && [ -e $(STAGED)/bin/itsmd ]; then \
	    echo "rm -rf $(STAGED)"; rm -rf $(STAGED); \
	  else \
	    echo "make uninstall: $(STAGED) is not itsmd's virtualenv; left alone" >&2; exit 1; \
	  fi; \
	fi
	@if [ "$$(readlink $(DESTDIR)$(BINDIR)/itsmd)" = "$(PREFIX)/bin/itsmd" ]; then \
	  echo "rm -f $(DESTDIR)$(BINDIR)/itsmd"; rm -f $(DESTDIR)$(BINDIR)/itsmd; \
	fi
	rm -f $(DESTDIR)$(UNITDIR)/itsmd.service $(DESTDIR)$(SYSUSERSDIR)/itsmd.conf \
	  $(DESTDIR)$(TMPFILESDIR)/itsmd.conf
	@echo "make uninstall: kept $(CONFDIR) (config, rules, environment) and /var/lib/itsmd"
	@echo "(the store), and the itsmd user; remove them by hand to drop them too."
