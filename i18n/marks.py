"""`N_`: marks a text made in Python for the catalogs; it is translated where it is shown."""

from __future__ import annotations


def N_(text: str) -> str:
    return text
