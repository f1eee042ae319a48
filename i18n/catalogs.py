"""The catalogs on disk: every `<locale>/*.po` file of a language read into one lookup, once."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from babel.messages.pofile import read_po

from i18n.languages import Language
from i18n.patterns import Pattern, compile_patterns, translate_text

HERE = Path(__file__).parent
# A language's catalogs: a directory of .po files, one per part of the product (pages,
# reasons, the CLI, alerts), so that several people can translate side by side.
LOCALE_DIRS: Mapping[Language, str] = MappingProxyType({Language.ZH_CN: "zh_CN"})


@dataclass(frozen=True, slots=True)
class Catalog:
    """One language's words: exact entries, and the entries with placeholders as patterns."""

    language: Language
    exact: Mapping[str, str]
    patterns: tuple[Pattern, ...]

    def gettext(self, msgid: str) -> str:
        return self.exact.get(msgid) or msgid

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        found = self.exact.get(singular if n == 1 else plural) or self.exact.get(singular)
        return found or (singular if n == 1 else plural)

    def reason(self, text: str) -> str:
        """A text made in English at run time (an error's reason, a skip's reason) in this
        language, matched against the catalog's entries with placeholders."""
        if not self.exact or not text:
            return text
        return _reason(self.language, text)


def po_files(language: Language) -> list[Path]:
    folder = LOCALE_DIRS.get(language)
    return sorted((HERE / folder).glob("*.po")) if folder else []


def read_entries(paths: list[Path]) -> dict[str, str]:
    """msgid → msgstr of every translated entry (a plural's forms all map to its one form)."""
    entries: dict[str, str] = {}
    for path in paths:
        with path.open("rb") as handle:
            catalog = read_po(handle)
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if strings and strings[0]:
                for msgid in ids:
                    entries[str(msgid)] = str(strings[0])
    return entries


@functools.lru_cache(maxsize=8192)
def _reason(language: Language, text: str) -> str:
    """A page shows the same few reasons on many rows: each is matched once (~0.1 ms)."""
    words = catalog(language)
    return translate_text(text, words.exact, words.patterns)


@functools.cache
def catalog(language: Language) -> Catalog:
    """The catalog of `language` (English: empty, every text is its own translation)."""
    exact = read_entries(po_files(language))
    return Catalog(language, MappingProxyType(exact), compile_patterns(exact))
