#!/usr/bin/env python
import os
import sys
from pathlib import Path

# Settings the portal reads that say where it runs: with none of them, in the environment or in
# a .env file, this is a bare checkout on a developer's machine.
_CONFIGURED_BY = ("DEBUG", "SECRET_KEY", "DATABASE_URL")
# Commands that serve requests: never started in development mode without being told.
_SERVERS = frozenset({"runserver", "sandbox_bank"})


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    bare = not any(name in os.environ for name in _CONFIGURED_BY)
    if bare and not (Path(__file__).resolve().parent / ".env").exists() and command not in _SERVERS:
        # Production is the settings' default, and refuses to start without its secrets. A
        # command on a bare checkout (makemigrations, check, shell, test data) is a developer's:
        # it runs with the development settings, as `make run` says explicitly.
        os.environ["DEBUG"] = "true"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
