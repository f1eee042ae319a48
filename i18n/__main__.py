"""`python -m i18n [--only PREFIX] [--write FILE.po]`: list the texts with no zh-CN entry, and
optionally add them (untranslated) to one catalog file for a translator to fill in."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from i18n.catalogs import catalog
from i18n.extract import everything
from i18n.languages import Language


def missing(only: str = "") -> dict[str, list[str]]:
    known = catalog(Language.ZH_CN).exact
    return {
        msgid: places
        for msgid, places in everything().items()
        if msgid not in known and any(p.startswith(only) for p in places)
    }


def add_to(path: Path, texts: dict[str, list[str]]) -> None:
    """Append the texts to a .po file (created if need be), keeping what it holds."""
    if path.exists():
        with path.open("rb") as handle:
            po = read_po(handle)
    else:
        po = Catalog(locale="zh_CN", project="UnitedCron")
    for msgid, places in texts.items():
        if msgid not in po:
            where = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in places[:3]]
            po.add(msgid, "", locations=where)
    with path.open("wb") as handle:
        write_po(handle, po, width=100, sort_output=False)


def main(argv: list[str]) -> int:
    only = argv[argv.index("--only") + 1] if "--only" in argv else ""
    texts = missing(only)
    for msgid, places in texts.items():
        print(f"{places[0]}: {msgid!r}")
    if "--write" in argv:
        add_to(Path(argv[argv.index("--write") + 1]), texts)
    print(f"{len(texts)} text(s) without a zh-CN entry", file=sys.stderr)
    return 1 if texts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
