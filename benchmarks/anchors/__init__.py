"""Bare scripts to measure edgekit against: the least a user could write (not imported by edgekit)."""
