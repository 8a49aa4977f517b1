"""The test suite's settings: the development settings, said explicitly (production is the
default of config.settings). Worker processes the tests start inherit DEBUG from here."""

import os

os.environ.setdefault("DEBUG", "true")

from config.settings import *  # noqa: F403
