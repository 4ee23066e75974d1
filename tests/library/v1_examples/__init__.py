"""Profilis 1.0 README and docs examples, written out as apps served by real servers."""
