"""The app's settings plus the bench URLconf (the real API and two bare endpoints beside it)."""

from gatekeeper.settings import *  # noqa: F403

ROOT_URLCONF = "bench.http.urls"
