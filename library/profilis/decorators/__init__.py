"""Decorators that instrument user code."""

from profilis.decorators.profile import profile, profile_function

__all__ = ["profile", "profile_function"]
