"""Which language a reader gets (pure): their setting, else Accept-Language, else the default."""

from __future__ import annotations

from enum import StrEnum


class Language(StrEnum):
    EN = "en"
    ZH_CN = "zh-CN"


DEFAULT = Language.EN


def parse_language(text: str) -> Language | None:
    """A language tag as we serve it: any Chinese is zh-CN (the catalogs are Simplified), any
    English is en; None for a language we have no catalog for."""
    tag = text.strip().replace("_", "-").lower()
    primary = tag.split("-", 1)[0]
    if primary == "zh":
        return Language.ZH_CN
    if primary == "en":
        return Language.EN
    return None


def accepted(header: str) -> list[Language]:
    """The languages of an Accept-Language header we can serve, most wanted first."""
    ranked: list[tuple[float, int, Language]] = []
    for index, part in enumerate(header.split(",")[:32]):  # a header is not a place to loop
        tag, _, params = part.partition(";")
        language = parse_language(tag)
        if language is None:
            continue
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                continue
        if weight > 0:
            ranked.append((-weight, index, language))
    return [language for _, _, language in sorted(ranked)]


def choose_language(setting: str, accept_language: str, default: Language) -> Language:
    """The user's own setting if they made one, else the browser's first language we have,
    else the admin's default."""
    chosen = parse_language(setting) if setting else None
    if chosen is not None:
        return chosen
    wanted = accepted(accept_language)
    return wanted[0] if wanted else default
