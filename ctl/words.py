"""What `ctl` says in the reader's language: chosen once per process, then `say` and `reason`.

The language is `--lang` / UNITEDCRON_LANGUAGE, else the POSIX locale (LC_ALL, LC_MESSAGES,
LANG, the first one set, as C programs read it), else English. One process serves one reader,
so the root callback chooses it once and every command's printing follows it.

`say("rule %(id)s paused", id=7)`: the text is looked up exactly, then filled in. Output
templates use `%(name)s`, not `{name}`: the catalogs turn every `{…}` msgid into a pattern that
any reason anywhere may match, and a short template like "rule {id} ({name}) {state}" would
then rewrite other parts' reasons. Errors (CtlError and its kin) are English at the source and
translated where they are printed, by `reason` (the catalogs' placeholder patterns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ctl.errors import UsageError
from i18n.languages import DEFAULT, Language, parse_language

if TYPE_CHECKING:
    from i18n.catalogs import Catalog

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")
_chosen: list[Catalog] = []  # the one catalog of this process (empty: English)


def from_locale(environ: Mapping[str, str]) -> Language:
    """The language of the POSIX locale: the first of LC_ALL, LC_MESSAGES, LANG that is set
    decides (C and POSIX, or a language we have no catalog for, is English)."""
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            return parse_language(value.split(".", 1)[0].split("@", 1)[0]) or DEFAULT
    return DEFAULT


def choose(given: str | None, environ: Mapping[str, str]) -> Language:
    """`--lang` (or UNITEDCRON_LANGUAGE) if given, else the locale's language."""
    if given:
        language = parse_language(given)
        if language is None:
            known = ", ".join(language.value for language in Language)
            raise UsageError(f"{given!r} is not a language we have: {known}", "--lang")
        return language
    return from_locale(environ)


def use(language: Language) -> None:
    # Imported here: `unitedcron center` and `agent` load ctl's modules too, and need no Babel.
    from i18n.catalogs import catalog

    _chosen[:] = [catalog(language)]


def language() -> Language:
    return _chosen[0].language if _chosen else DEFAULT


def say(text: str, **values: object) -> str:
    """`text` in the reader's language, its `%(name)s` filled in with `values`."""
    found = _chosen[0].gettext(text) if _chosen else text
    return found % values if values else found


def reason(text: str) -> str:
    """A text made in English elsewhere (an error, a run's reason) in the reader's language."""
    return _chosen[0].reason(text) if _chosen and text else text
