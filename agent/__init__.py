"""The UnitedCron agent: runs what the center sends, as the rule's user, and reports back."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("unitedcron")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
