"""The emulator's authorised API client (``api``) for the request-check tests."""

from tests.emulator.conftest import api

__all__ = ["api"]
