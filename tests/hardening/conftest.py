from tests.gates.conftest import initiative, panel

__all__ = ["initiative", "panel"]
