"""Production settings plus a bare view, so the benchmarks compare like with like."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# The lookup benchmark's constant body and page, written before the server starts.
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], VAR_DIR / "bench-templates"]  # noqa: F405
