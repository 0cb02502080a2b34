"""English number words: cardinals, ordinals, years, decimals and digit strings.

American style, no "and" ("one hundred twenty-three"). Numbers past the trillions are read
digit by digit, as a listener would want a long code read.
"""

from __future__ import annotations

from typing import Final

_ONES: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS: Final = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES: Final = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
#: The largest number read as a cardinal; longer ones are read digit by digit.
MAX_CARDINAL: Final = 10**15 - 1
_ORDINAL_WORDS: Final = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def cardinal(n: int) -> str:
    """``1234`` → ``"one thousand two hundred thirty-four"``; negative: ``"minus …"``."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(str(n))
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {cardinal(rest)}" if rest else "")
    for value, word in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{cardinal(head)} {word}" + (f" {cardinal(rest)}" if rest else "")
    raise AssertionError("unreachable")  # pragma: no cover


def ordinal(n: int) -> str:
    """``21`` → ``"twenty-first"``, ``100`` → ``"one hundredth"``."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    head2, hyphen, last = last.rpartition("-")
    prefix = head + sep + head2 + hyphen
    if last in _ORDINAL_WORDS:
        return prefix + _ORDINAL_WORDS[last]
    if last.endswith("y"):
        return prefix + last[:-1] + "ieth"
    return prefix + last + "th"


def year(n: int) -> str:
    """A year as people say it: ``1999`` → ``"nineteen ninety-nine"``, ``1905`` →
    ``"nineteen oh five"``, ``2005`` → ``"two thousand five"``, ``1800`` → ``"eighteen
    hundred"``. Outside 1000-9999 it is a plain cardinal."""
    if not 1000 <= n <= 9999 or 2000 <= n <= 2009 or n % 1000 == 0:
        return cardinal(n)
    century, rest = divmod(n, 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {cardinal(rest)}"
    return f"{cardinal(century)} {cardinal(rest)}"


def plural(words: str) -> str:
    """The plural of a number's words, for decades: ``"ninety"`` → ``"nineties"``."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"


def digits(text: str) -> str:
    """Each digit of ``text`` as a word: ``"007"`` → ``"zero zero seven"``."""
    return " ".join(_ONES[int(c)] for c in text if c.isdigit())


def decimal(text: str) -> str:
    """A decimal numeral such as ``"3.14"`` or ``"1,000.5"``: ``"three point one four"``."""
    whole, _, fraction = text.replace(",", "").partition(".")
    words = cardinal(int(whole or "0"))
    return f"{words} point {digits(fraction)}" if fraction else words
