"""Settings of bench.portal's server: the project's, with the bare view added."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.portal_urls"
