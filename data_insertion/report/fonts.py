"""Fonts that hold every script a name may be written in, all embedded, and the markup that switches
between them.

The fallback chain, for each character of the report:
1. DejaVu Sans (and DejaVu Sans Bold), from the first of FONT_DIRECTORIES that has it: Latin, Greek
   and Cyrillic;
2. without DejaVu Sans, Bitstream Vera Sans (and Bold), which ReportLab itself ships: Western
   European letters only;
3. every character the font of step 1 or 2 lacks (Chinese, Japanese and Korean; Greek and
   Cyrillic too under Vera) in WenQuanYi Micro Hei, from the paperang-p2-fonts-cjk package in
   requirements.txt: GB 18030's ideographs, kana, every Hangul syllable, Latin, Greek, Cyrillic.

All three are TrueType fonts with glyf outlines, the kind ReportLab embeds, and it embeds only the
glyphs a report uses. So every font is in the PDF and any viewer shows every name; ReportLab's CID
fonts (STSong-Light and the like) are never embedded, and poppler-based viewers drew their
characters as empty boxes.
"""

import functools
import itertools
import os
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

import reportlab
from reportlab.pdfbase import pdfmetrics
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
VERA_DIRECTORY = Path(reportlab.__file__).parent / "fonts"
CJK_FONT = "WenQuanYiMicroHei"
# The first face of the collection is the proportional one; the second is its monospaced twin.
CJK_FONT_FILE = resources.files("paperang_p2_fonts_cjk") / "fonts" / "wqy-microhei.ttc"


@dataclass(frozen=True)
class ReportFonts:
    regular: str
    bold: str
    # The code points the regular font draws; every other character goes to CJK_FONT.
    characters: frozenset[int] = field(repr=False)


@functools.cache
def register_fonts(directories: tuple[Path, ...]) -> ReportFonts:
    """WenQuanYi Micro Hei, and DejaVu Sans from the first of the directories that has it, or else
    ReportLab's Vera."""
    _register_family(CJK_FONT, TTFont(CJK_FONT, str(CJK_FONT_FILE), subfontIndex=0))
    for directory in directories:
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        try:
            fonts = _register_text_fonts("DejaVuSans", regular, bold if bold.is_file() else regular)
        except (OSError, TTFError):  # not there, or not a font ReportLab can embed
            continue
        return fonts
    return _register_text_fonts("Vera", VERA_DIRECTORY / "Vera.ttf", VERA_DIRECTORY / "VeraBd.ttf")


def _register_text_fonts(name: str, regular_file: Path, bold_file: Path) -> ReportFonts:
    regular = TTFont(name, regular_file)
    bold = TTFont(f"{name}-Bold", bold_file)
    _register_family(name, regular, bold)
    return ReportFonts(name, bold.fontName, frozenset(regular.face.charToGlyph))


def _register_family(name: str, regular: TTFont, bold: TTFont | None = None) -> None:
    """Registers the fonts; <b> and <i> in a paragraph then find a face (the regular one if there is
    no other) instead of failing."""
    bold = bold or regular
    for font in (regular, bold):
        pdfmetrics.registerFont(font)
    pdfmetrics.registerFontFamily(
        name,
        normal=regular.fontName,
        bold=bold.fontName,
        italic=regular.fontName,
        boldItalic=bold.fontName,
    )


def text_markup(value: object, fonts: ReportFonts) -> str:
    """Paragraph markup for data: escaped, and each run of characters in a font that has it."""
    parts = []
    for font, run in _font_runs(_visible(str(value)), fonts):
        if font == fonts.regular:
            parts.append(escape(run))
        else:
            parts.append(f'<font name="{font}">{escape(run)}</font>')
    return "".join(parts)


def text_width(value: str, font_size: float, fonts: ReportFonts) -> float:
    """How wide text_markup(value) draws at font_size, in points (each run in its own font)."""
    return sum(
        pdfmetrics.stringWidth(run, font, font_size)
        for font, run in _font_runs(_visible(value), fonts)
    )


def _font_runs(text: str, fonts: ReportFonts) -> list[tuple[str, str]]:
    """The text cut into runs of characters, each with the font that draws it."""

    def font_of(character: str) -> str:
        return fonts.regular if ord(character) in fonts.characters else CJK_FONT

    return [
        (font, "".join(characters)) for font, characters in itertools.groupby(text, key=font_of)
    ]


def _visible(text: str) -> str:
    """Control characters (a rejected name's NUL) written as their code point, not dropped."""
    return "".join(
        f"[U+{ord(character):04X}]" if unicodedata.category(character) == "Cc" else character
        for character in text
    )
