"""The demo data's known passwords never reach a production database by accident."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from programs.models import Initiative

pytestmark = pytest.mark.django_db


def test_seed_demo_refuses_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--allow-known-passwords"):
        call_command("seed_demo", "--if-empty", stdout=io.StringIO())
    assert not Initiative.objects.exists()


def test_seed_demo_with_debug_off_loads_only_when_told_explicitly(settings):
    settings.DEBUG = False
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=io.StringIO())
    assert Initiative.objects.exists()


def test_seed_demo_loads_in_debug(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--if-empty", stdout=io.StringIO())
    assert Initiative.objects.exists()
