"""Production settings plus a bare view, so the benchmarks compare like with like."""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
