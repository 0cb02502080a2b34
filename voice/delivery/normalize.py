"""Text cleanup: markdown and emoji out (for transcript and speech), then spoken forms in.

:func:`strip_markup` removes what nobody should see or hear as characters (markdown
markers, emoji, emoticons). :func:`speakable` then rewrites what a TTS voice reads badly
into words: numbers, years, times, money, percentages, units, abbreviations and URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from voice.delivery.numbers import cardinal, decimal, digits, ordinal, plural, year

Sub = Callable[[re.Match[str]], str]

# --- markup ----------------------------------------------------------------------------

_EMOJI: Final = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U0001f1e6-\U0001f1ff"
    "\ufe0f\u200d\u20e3\U000e0020-\U000e007f]+"
)
_EMOTICON: Final = re.compile(r"(?<!\S)(?:[:;=][-']?[)(DPpOo/\\|\]\[*]|<3|\^_?\^|[xX]D)(?!\S)")
_MARKDOWN: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"```\w*"), ""),  # code fences
    (re.compile(r"`([^`\n]*)`"), r"\1"),  # inline code
    (re.compile(r"!\[([^\]\n]*)\]\([^)\s]*\)"), ""),  # images
    (re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)"), r"\1"),  # links: their text
    (re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.M), ""),  # horizontal rules
    (re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+", re.M), ""),  # headings
    (re.compile(r"^[ \t]*>[ \t]?", re.M), ""),  # block quotes
    (re.compile(r"^[ \t]*(?:[-+\u2022\u2023\u25e6]|\d{1,3}[.)])[ \t]+", re.M), ""),  # list items
    (re.compile(r"^[ \t]*\*[ \t]+(?=[^*\n]*$)", re.M), ""),  # "* item", not "* laughs *"
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"\1"),  # bold
    (re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"), r"\1"),  # bold
    (re.compile(r"(?<!\w)_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?!\w)"), r"\1"),  # italic
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # strikethrough
    (re.compile(r"[ \t]*\|[ \t]*"), " "),  # table cells
)


def strip_markup(text: str) -> str:
    """``text`` without markdown markers, emoji or emoticons. Single ``*asterisks*`` stay:
    they are stage directions, which the planner handles."""
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    return _EMOTICON.sub("", _EMOJI.sub("", text))


def tidy(text: str) -> str:
    """Collapse whitespace and drop the spaces left before punctuation by removed words."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" ([,.;:!?)\]\u2019\u201d])", r"\1", text)


# --- spoken forms --------------------------------------------------------------------------

_NUM: Final = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"  # 1,234.5 | 1234 | 3.14
_URL: Final = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:!?]")
_EMAIL: Final = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CURRENCIES: Final = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
}
_SCALE_WORDS: Final = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}
_UNITS: Final = {
    "km": ("kilometer", "kilometers"), "kg": ("kilogram", "kilograms"),
    "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"), "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"), "ft": ("foot", "feet"), "ml": ("milliliter", "milliliters"),
    "°c": ("degree Celsius", "degrees Celsius"), "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
}  # fmt: skip
_ABBREVIATIONS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\bDr\.(?=\s)"), "Doctor"),
    (re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (re.compile(r"\bMr\.(?=\s)"), "Mister"),
    (re.compile(r"\bMs\.(?=\s)"), "Miz"),
    (re.compile(r"\bProf\.(?=\s)"), "Professor"),
    (re.compile(r"\bJr\.(?=\s|$)"), "Junior"),
    (re.compile(r"\bSr\.(?=\s|$)"), "Senior"),
    (re.compile(r"\bSt\.(?=\s+[A-Z])"), "Saint"),
    (re.compile(r"\bSt\.?(?=\s|$|[,;:!?])"), "Street"),
    (re.compile(r"\betc\.(?=\s*$|\s+[A-Z])"), "et cetera."),
    (re.compile(r"\betc\b\.?"), "et cetera"),
    (re.compile(r"\be\.g\.(?!\w)", re.I), "for example"),
    (re.compile(r"\bi\.e\.(?!\w)", re.I), "that is"),
    (re.compile(r"\bvs\b\.?", re.I), "versus"),
    (re.compile(r"\bapprox\.(?=\s)", re.I), "approximately"),
    (re.compile(r"\bNo\.(?=\s?\d)"), "number"),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"\s&\s"), " and "),
)
# A 4-digit number is read as a year after these words ("in 1850", "since 1066").
_YEAR_CUES: Final = (
    "in|since|from|until|till|by|of|year|circa|around|before|after|during|between|and|to|"
    "early|late|mid|back|summer|winter|spring|autumn|fall|"
    "january|february|march|april|may|june|july|august|september|october|november|december"
)


def _amount(number: str) -> str:
    """Words for a numeral that may have thousands commas and decimals."""
    return decimal(number) if "." in number else _integer(number.replace(",", ""))


def _integer(text: str) -> str:
    if len(text) > 1 and text.startswith("0"):
        return digits(text)  # "007", a code rather than a quantity
    return cardinal(int(text))


def _money(match: re.Match[str]) -> str:
    sign, symbol, number, scale = match.group(1, 2, 3, 4)
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    prefix = "minus " if sign else ""
    if scale:  # "$5 million", "$3.5bn": the scale word takes the unit after it
        return f"{prefix}{_amount(number)} {_SCALE_WORDS.get(scale.lower(), scale)} {many}"
    whole, _, fraction = number.replace(",", "").partition(".")
    units = int(whole or "0")
    cents = int((fraction + "00")[:2]) if fraction and sub_one else 0
    if fraction and (len(fraction) > 2 or not sub_one):
        return f"{prefix}{decimal(number)} {many}"
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return prefix + " and ".join(parts)


def _time(match: re.Match[str]) -> str:
    hour, minute, meridiem = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if minute == 0:
        words = cardinal(hour) + ("" if meridiem else " o'clock")
    elif minute < 10:
        words = f"{cardinal(hour)} oh {cardinal(minute)}"
    else:
        words = f"{cardinal(hour)} {cardinal(minute)}"
    if meridiem:
        words += f" {meridiem[0].lower()} m"
    return words + _kept_period(match)


def _kept_period(match: re.Match[str]) -> str:
    """The period a match swallowed ("7 p.m.") when it also ended the sentence."""
    rest = match.string[match.end() :]
    ends_sentence = not rest.strip() or re.match(r"\s+[A-Z]", rest) is not None
    return "." if match.group().endswith(".") and ends_sentence else ""


def _unit(match: re.Match[str]) -> str:
    number, unit = match.group(1, 2)
    one, many = _UNITS[unit.lower()]
    return f"{_amount(number)} {one if number == '1' else many}"


def _decade(match: re.Match[str]) -> str:
    number = match.group(1)
    words = year(int(number)) if len(number) == 4 else cardinal(int(number))
    return plural(words)


def _range(match: re.Match[str]) -> str:
    """A range: "5-10" → "five to ten"; "1999-2001" → "nineteen ninety-nine to two
    thousand one"."""
    low, high = match.group(1, 2)
    as_years = all(len(n) == 4 and 1000 <= int(n) <= 2099 for n in (low, high))
    read = (lambda n: year(int(n))) if as_years else _integer
    return f"{read(low)} to {read(high)}"


def _year(match: re.Match[str]) -> str:
    return match.group(1) + year(int(match.group(2)))


_SPOKEN_FORMS: Final[tuple[tuple[re.Pattern[str], str | Sub], ...]] = (
    (_URL, "link"),
    (_EMAIL, lambda m: m.group().replace("@", " at ").replace(".", " dot ")),
    *_ABBREVIATIONS,
    (  # times: 10:30, 7:05 pm, 7 p.m., 7pm
        re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s?([aApP])\.?[mM]\b\.?)?"),
        _time,
    ),
    (re.compile(r"\b(1[0-2]|0?[1-9])()\s?([aApP])\.?[mM]\b\.?"), _time),
    (  # money: $2.50, -$5, €5, £10, $5 million, $3.5bn
        re.compile(
            rf"(-)?([$€£¥])\s?({_NUM})(?:\s?(thousand|million|billion|trillion|k|m|bn|b)\b)?",
            re.I,
        ),
        _money,
    ),
    (re.compile(rf"(?<![\w.])(-?(?:{_NUM}))\s?%"), lambda m: f"{_signed(m.group(1))} percent"),
    (
        re.compile(
            rf"(?<![\w.])({_NUM})\s?(km/h|km|kg|cm|mm|mph|mi|lbs?|ft|ml|°[CF]|°)(?!\w)", re.I
        ),
        _unit,
    ),
    (re.compile(r"(?<![\w.])(\d+)(st|nd|rd|th)\b", re.I), lambda m: ordinal(int(m.group(1)))),
    (re.compile(r"(?<![\w.])'?(\d0|1\d{2}0|20\d0)'?s\b"), _decade),  # 80s, '90s, 1990s
    (  # ranges: 5-10, 1999-2001 (hyphen or en dash)
        re.compile(r"(?<![\w.,-])(\d{1,4})\s?[-\u2013]\s?(\d{1,4})(?![\w.,-]|\.\d)"),
        _range,
    ),
    (re.compile(rf"(\b(?:{_YEAR_CUES})\s+)(1\d{{3}}|20\d\d)(?![\w,]|\.\d)", re.I), _year),
    (re.compile(r"(?<![\w.,$€£¥-])(19\d\d|20\d\d)(?![\w,%]|\.\d)"), lambda m: year(int(m[1]))),
    (re.compile(rf"(?<![\w.,])(-?(?:{_NUM}))(?![\w]|,\d|\.\d)"), lambda m: _signed(m.group(1))),
    (re.compile(r"(?<=\w) ?\+ ?(?=\w)"), " plus "),
    (re.compile(r"(?<=\w) ?[*\u00d7] ?(?=\w)"), " times "),
)


def _signed(number: str) -> str:
    return "minus " + _amount(number[1:]) if number.startswith("-") else _amount(number)


def speakable(text: str) -> str:
    """``text`` with numbers, money, times, units, abbreviations and URLs as spoken words.

    >>> speakable("Dr. Lee paid $2.50 at 7:05 pm in 1999.")
    'Doctor Lee paid two dollars and fifty cents at seven oh five p m in nineteen ninety-nine.'
    """
    for pattern, replacement in _SPOKEN_FORMS:
        text = pattern.sub(replacement, text)
    return tidy(text)
