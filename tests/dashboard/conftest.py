import pytest

from tests.dashboard.portfolio import Portfolio, hand_built_portfolio


@pytest.fixture
def portfolio(db) -> Portfolio:
    return hand_built_portfolio()
