"""Fonts that hold every script a name may be written in, and the markup that switches to them.

DejaVu Sans covers Latin, Greek and Cyrillic; ReportLab's built-in CID fonts cover Chinese,
Japanese and Korean. Without DejaVu Sans, Helvetica takes its place and the Chinese CID font, which
also holds Greek and Cyrillic, takes every character Helvetica lacks.
"""

import functools
import itertools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

# The folders DejaVu Sans is usually installed in on Linux (Debian/Ubuntu, Fedora, Arch, FreeBSD),
# macOS and Windows.
FONT_DIRECTORIES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts/dejavu"),
    Path("/Library/Fonts"),
    Path("~/Library/Fonts").expanduser(),
    Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts",
    Path(os.environ.get("LOCALAPPDATA", "~")).expanduser() / "Microsoft/Windows/Fonts",
)
CHINESE_FONT = "STSong-Light"
JAPANESE_FONT = "HeiseiMin-W3"
KOREAN_FONT = "HYSMyeongJo-Medium"


@dataclass(frozen=True)
class ReportFonts:
    regular: str
    bold: str
    # False for the Helvetica fallback, whose encoding holds only Western European letters.
    unicode: bool


@functools.cache
def register_fonts(directories: tuple[Path, ...]) -> ReportFonts:
    """The CID fonts, and DejaVu Sans from the first of the directories that has it."""
    for name in (CHINESE_FONT, JAPANESE_FONT, KOREAN_FONT):
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    for directory in directories:
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        try:
            pdfmetrics.registerFont(TTFont("DejaVuSans", regular))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", bold if bold.is_file() else regular))
        except (OSError, TTFError):  # not there, or not a font ReportLab can embed
            continue
        pdfmetrics.registerFontFamily(
            "DejaVuSans",
            normal="DejaVuSans",
            bold="DejaVuSans-Bold",
            italic="DejaVuSans",
            boldItalic="DejaVuSans-Bold",
        )
        return ReportFonts("DejaVuSans", "DejaVuSans-Bold", unicode=True)
    return ReportFonts("Helvetica", "Helvetica-Bold", unicode=False)


def text_markup(value: object, fonts: ReportFonts) -> str:
    """Paragraph markup for data: escaped, and each run of characters in a font that has it."""

    def needs_cid_font(character: str) -> bool:
        return _is_cjk(character) or (not fonts.unicode and not _in_helvetica(character))

    parts = []
    for cid, characters in itertools.groupby(_visible(str(value)), key=needs_cid_font):
        run = "".join(characters)
        if cid:
            font = _cid_font_for(run) if any(map(_is_cjk, run)) else CHINESE_FONT
            parts.append(f'<font name="{font}">{escape(run)}</font>')
        else:
            parts.append(escape(run))
    return "".join(parts)


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return (
        0x1100 <= code <= 0x11FF  # Hangul Jamo
        or 0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full- and half-width forms
        or 0x20000 <= code <= 0x3FFFF  # rare ideographs
    )


def _cid_font_for(run: str) -> str:
    """Kana make a run Japanese and Hangul Korean; ideographs alone are read as Chinese."""
    codes = [ord(character) for character in run]
    if any(0x3040 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9F for code in codes):
        return JAPANESE_FONT
    if any(
        0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F or 0xAC00 <= code <= 0xD7AF
        for code in codes
    ):
        return KOREAN_FONT
    return CHINESE_FONT


def _in_helvetica(character: str) -> bool:
    try:
        character.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _visible(text: str) -> str:
    """Control characters (a rejected name's NUL) written as their code point, not dropped."""
    return "".join(
        f"[U+{ord(character):04X}]" if unicodedata.category(character) == "Cc" else character
        for character in text
    )
