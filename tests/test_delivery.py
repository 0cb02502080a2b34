"""The delivery planner: directions, pauses, spoken forms, markup, state across chunks.

All synchronous and model-free: text in, segments out.
"""

from __future__ import annotations

import logging

import pytest

from voice.delivery import (
    DeliveryRules,
    DeliveryRulesError,
    DeliveryState,
    Pause,
    Prosody,
    ProsodyChange,
    Segment,
    Speak,
    default_rules,
    parse_rules,
    plan_speech,
    plan_transcript,
    speakable,
    spoken_text,
    strip_markup,
)
from voice.delivery.numbers import cardinal, ordinal, year

BASE = Prosody()


def speaks(plan: list[Segment]) -> list[Speak]:
    return [s for s in plan if isinstance(s, Speak)]


def spoken(plan: list[Segment]) -> str:
    return " ".join(s.text for s in speaks(plan))


def plan(text: str) -> list[Segment]:
    """The plan for ``text`` as a whole response, in a plain voice."""
    return plan_speech(text, DeliveryState())


# --- stage directions ------------------------------------------------------------------

DIRECTIONS = [
    "*laughs softly* Oh, that's funny.",
    "(whispering) I have a secret.",
    "[sighs] Fine, whatever you say.",
    "I think *smiles* you're right.",
    "That's wonderful! *claps excitedly* Tell me more.",
    "*tilts her head, considering* Maybe.",
    "[pause] So, where were we?",
    "*something nobody has a rule for* Hello there.",
    "(laughs) Okay. (nods) Okay.",
]


@pytest.mark.parametrize("text", DIRECTIONS)
def test_directions_are_never_spoken(text: str) -> None:
    segments = plan(text)
    for segment in speaks(segments):
        assert not set("*()[]") & set(segment.text), segment
        assert not set("*()[]") & set(segment.transcript), segment
    for word in ("laughs", "whispering", "sighs", "smiles", "claps", "tilts", "nobody", "nods"):
        assert word not in spoken(segments)
        assert word not in spoken_text(text)
    assert speaks(segments), "the words around the direction are still spoken"


def test_spoken_text_keeps_written_forms_and_drops_directions() -> None:
    text = "*grins* It's $2.50 at 7:05 pm, Dr. Lee... see https://example.com — **really**."
    assert spoken_text(text) == (
        "It's $2.50 at 7:05 pm, Dr. Lee... see https://example.com — really."
    )


def test_whisper_is_slower_and_quieter() -> None:
    (speak,) = speaks(plan("(whispering) I have a secret."))
    assert speak.prosody.length_scale > BASE.length_scale
    assert speak.prosody.volume < BASE.volume


def test_laugh_and_excitement_are_faster_and_livelier() -> None:
    for text in ("*laughs* You got me!", "*excitedly* We won!"):
        (speak,) = speaks(plan(text))
        assert speak.prosody.length_scale < BASE.length_scale
        assert speak.prosody.noise_scale > BASE.noise_scale


def test_sigh_is_slower_with_a_pause_before() -> None:
    segments = plan("[sighs] I miss her.")
    assert isinstance(segments[0], Pause) and segments[0].ms > 0
    assert isinstance(segments[1], Speak)
    assert segments[1].prosody.length_scale > BASE.length_scale


def test_direction_lasts_until_the_end_of_its_sentence() -> None:
    first, second = speaks(plan("*whispers* Come closer. Now listen."))
    assert first.text == "Come closer." and first.prosody.volume < 1
    assert second.text == "Now listen." and second.prosody == BASE


def test_direction_mid_sentence_affects_only_what_follows() -> None:
    before, after = speaks(plan("I think *smiles* you're right."))
    assert before.text == "I think" and before.prosody == BASE
    assert after.text == "you're right." and after.prosody != BASE


def test_next_direction_replaces_the_previous_one() -> None:
    whisper, laugh = speaks(plan("*whispers* so quiet, *laughs* so loud!"))
    assert whisper.prosody.volume < 1
    assert laugh.prosody.volume == 1 and laugh.prosody.length_scale < 1


def test_abbreviation_does_not_end_the_directions_sentence() -> None:
    (speak,) = speaks(plan("*whispers* Dr. Lee is here."))
    assert speak.text == "Doctor Lee is here." and speak.prosody.volume < 1


def test_combined_keywords_multiply() -> None:
    (speak,) = speaks(plan("*laughs softly* Oh, stop."))
    laugh = default_rules().match("laughs")
    whisper = default_rules().match("softly")
    assert laugh is not None and whisper is not None
    assert speak.prosody.volume == pytest.approx(whisper.volume)
    assert speak.prosody.noise_w == pytest.approx(BASE.noise_w * laugh.noise_w * whisper.noise_w)


def test_unknown_direction_is_dropped_and_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="voice.delivery.plan"):
        segments = plan("*juggles three flaming torches* Hello.")
    assert [s.text for s in speaks(segments)] == ["Hello."]
    assert speaks(segments)[0].prosody == BASE
    assert "juggles" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="voice.delivery.plan"):
        plan("*juggles* Hello.")
    assert not caplog.records, "direction text is logged at debug only"


def test_single_emphasis_word_in_asterisks_is_spoken() -> None:
    assert spoken(plan("I *really* mean it.")) == "I really mean it."
    assert spoken_text("I *really* mean it.") == "I really mean it."


def test_parenthesis_is_a_direction_only_when_a_rule_knows_it() -> None:
    aside = plan("I went to Paris (the one in Texas) last year.")
    assert spoken(aside) == "I went to Paris, the one in Texas, last year."
    assert plan_transcript(aside) == "I went to Paris (the one in Texas) last year."
    assert spoken(plan("(nervously) I went to Paris.")) == "I went to Paris."


def test_sloppy_directions_are_still_directions() -> None:
    assert spoken(plan("* laughs * Okay. *waves *")) == "Okay."
    assert spoken(plan("[ sighs ] Okay.")) == "Okay."


def test_parentheses_inside_a_word_are_not_asides() -> None:
    assert spoken(plan("Bring your friend(s) along.")) == "Bring your friends along."


def test_math_asterisks_are_not_directions() -> None:
    assert (
        spoken(plan("2 * 3 is 6, and 2*3 too."))
        == "two times three is six, and two times three too."
    )
    assert spoken(plan("Two * three is six.")) == "Two times three is six."


# --- pauses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("Well... I guess so.", 300),
        ("Well\u2026 I guess so.", 300),
        ("Well — I guess so.", 150),
        ("Well -- I guess so.", 150),
        ("Well - I guess so.", 150),
        ("Well\u2014I guess so.", 150),
        ("Well \u2013 I guess so.", 150),
    ],
)
def test_ellipses_and_dashes_become_pauses(text: str, ms: int) -> None:
    segments = plan(text)
    assert [type(s) for s in segments] == [Speak, Pause, Speak]
    first, pause, second = segments
    assert isinstance(first, Speak) and first.text == "Well"
    assert isinstance(pause, Pause) and pause.ms == ms
    assert isinstance(second, Speak) and second.text == "I guess so."
    assert plan_transcript(segments) == text  # as written


def test_hyphens_inside_words_and_negative_numbers_are_not_pauses() -> None:
    assert spoken(plan("A well-known fact: it was -5 outside.")) == (
        "A well-known fact: it was minus five outside."
    )


def test_pause_lengths_come_from_the_rules() -> None:
    rules = parse_rules("[pauses]\nellipsis_ms = 700\ndash_ms = 50\n")
    segments = plan_speech("One... two — three.", DeliveryState(rules=rules))
    assert [s.ms for s in segments if isinstance(s, Pause)] == [700, 50]


def test_sentence_pause_goes_between_sentences_not_after_the_last() -> None:
    state = DeliveryState(sentence_pause_ms=120)
    segments = plan_speech("One. Two!", state)
    assert [type(s) for s in segments] == [Speak, Pause, Speak]
    assert segments[1] == Pause(120)
    # owed to the next chunk's first words
    assert plan_speech("Three.", state)[0] == Pause(120)


def test_chunk_of_only_a_direction_owes_its_pause_to_the_next_words() -> None:
    state = DeliveryState()
    assert plan_speech("*sighs*", state) == []
    segments = plan_speech("Okay, fine.", state)
    assert isinstance(segments[0], Pause) and segments[0].ms == 400
    assert isinstance(segments[1], Speak) and segments[1].prosody.length_scale > 1


# --- state across chunks -------------------------------------------------------------------


def test_direction_at_the_end_of_a_chunk_applies_to_the_next() -> None:
    state = DeliveryState()
    first = plan_speech("I'm fine. *whispers*", state)
    assert speaks(first)[0].prosody == BASE
    second = plan_speech("But I'm not.", state)
    assert speaks(second)[0].prosody.volume < 1
    third = plan_speech("Anyway.", state)
    assert speaks(third)[0].prosody == BASE


def test_direction_cut_in_two_by_the_chunker_is_held_and_not_spoken() -> None:
    state = DeliveryState()
    first = plan_speech("*leans in close,", state)
    assert first == [] and state.held
    second = plan_speech("whispering* I have a secret.", state)
    assert spoken(second) == "I have a secret."
    assert plan_transcript(second) == "I have a secret."
    assert speaks(second)[0].prosody.volume < 1
    assert state.held == ""


def test_unclosed_parenthesis_that_turns_out_an_aside_is_spoken() -> None:
    state = DeliveryState()
    assert plan_speech("We met in Paris (the one", state) == [
        Speak("We met in Paris", BASE, "We met in Paris ")
    ]
    second = plan_speech("in Texas) last year.", state)
    assert spoken(second) == ", the one in Texas, last year."
    assert plan_transcript(second) == "(the one in Texas) last year."


def test_long_unclosed_marker_is_not_held() -> None:
    state = DeliveryState()
    text = "*" + "word " * 40
    segments = plan_speech(text, state)
    assert state.held == "" and "word" in spoken(segments)


def test_base_prosody_and_speaker_carry_into_every_segment() -> None:
    base = Prosody(length_scale=1.2, noise_scale=0.5, noise_w=0.6, volume=0.9, speaker_id=3)
    segments = plan_speech("Hi. *whispers* Secret.", DeliveryState(base=base))
    plain, whisper = speaks(segments)
    assert plain.prosody == base
    assert whisper.prosody.speaker_id == 3
    assert whisper.prosody.length_scale > base.length_scale
    assert whisper.prosody.volume < base.volume


# --- markup and emoji ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Bold** and __strong__ words", "Bold and strong words"),
        ("## A heading", "A heading"),
        ("- a bullet", "a bullet"),
        ("* another bullet", "another bullet"),
        ("1. first item", "first item"),
        ("> quoted", "quoted"),
        ("use `pip install`", "use pip install"),
        ("see [the docs](https://example.com)", "see the docs"),
        ("~~old~~ new", "old new"),
        ("_italic_ text", "italic text"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("I love it 😍🎉!", "I love it!"),
        ("thumbs 👍🏽 up", "thumbs up"),
        ("nice :) see you ;-)", "nice see you"),
        ("flags 🇫🇷 too", "flags too"),
    ],
)
def test_markup_and_emoji_are_stripped(text: str, expected: str) -> None:
    assert spoken_text(text) == expected
    assert speakable(strip_markup(text)) == expected


def test_urls_are_read_as_link_but_kept_in_the_transcript() -> None:
    text = "Look at https://example.com/a?b=1 today."
    assert spoken(plan(text)) == "Look at link today."
    assert spoken_text(text) == text


def test_nothing_speakable_gives_no_segments() -> None:
    assert plan("🎉🎉") == []
    assert plan("*waves*") == []
    assert spoken_text("*waves*") == ""


# --- spoken forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # integers, commas, negatives, decimals
        ("42", "forty-two"),
        ("0", "zero"),
        ("13", "thirteen"),
        ("100", "one hundred"),
        ("101", "one hundred one"),
        ("1,234", "one thousand two hundred thirty-four"),
        ("1,000,000", "one million"),
        (
            "12,345,678",
            "twelve million three hundred forty-five thousand six hundred seventy-eight",
        ),
        ("-5", "minus five"),
        ("it was -3.2 degrees", "it was minus three point two degrees"),
        ("3.5", "three point five"),
        ("0.25", "zero point two five"),
        ("1,234.5", "one thousand two hundred thirty-four point five"),
        ("007", "zero zero seven"),
        # ordinals
        ("1st", "first"),
        ("2nd", "second"),
        ("3rd", "third"),
        ("4th", "fourth"),
        ("12th", "twelfth"),
        ("21st", "twenty-first"),
        ("100th", "one hundredth"),
        ("the 90th", "the ninetieth"),
        # years
        ("1999", "nineteen ninety-nine"),
        ("in 1999", "in nineteen ninety-nine"),
        ("2000", "two thousand"),
        ("2005", "two thousand five"),
        ("2023", "twenty twenty-three"),
        ("1905", "nineteen oh five"),
        ("since 1850", "since eighteen fifty"),
        ("1800s", "eighteen hundreds"),
        ("the 1990s", "the nineteen nineties"),
        ("the 80s", "the eighties"),
        ("1,500 people", "one thousand five hundred people"),
        ("1500 people", "one thousand five hundred people"),
        # times
        ("10:30", "ten thirty"),
        ("7:05 pm", "seven oh five p m"),
        ("7:05 PM", "seven oh five p m"),
        ("9:15 a.m. tomorrow", "nine fifteen a m tomorrow"),
        ("Meet at 6 pm.", "Meet at six p m."),
        ("at 7pm", "at seven p m"),
        ("7:00", "seven o'clock"),
        ("7:00 am", "seven a m"),
        ("12:45", "twelve forty-five"),
        # money
        ("$2.50", "two dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$0.99", "ninety-nine cents"),
        ("$0.01", "one cent"),
        ("$1,000", "one thousand dollars"),
        ("$5 million", "five million dollars"),
        ("$3.5bn", "three point five billion dollars"),
        ("€5", "five euros"),
        ("€1.20", "one euro and twenty cents"),
        ("£10", "ten pounds"),
        ("£1.50", "one pound and fifty pence"),
        ("¥500", "five hundred yen"),
        ("-$5", "minus five dollars"),
        # percentages
        ("50%", "fifty percent"),
        ("3.5%", "three point five percent"),
        ("-2%", "minus two percent"),
        # ranges and symbols
        ("5-10 days", "five to ten days"),
        ("1999-2001", "nineteen ninety-nine to two thousand one"),
        ("#1 fan", "number one fan"),
        ("No. 5", "number five"),
        ("2+2", "two plus two"),
        ("salt & pepper", "salt and pepper"),
        # abbreviations
        ("Dr. Lee", "Doctor Lee"),
        ("Mr. Smith", "Mister Smith"),
        ("Mrs. Smith", "Missus Smith"),
        ("Ms. Smith", "Miz Smith"),
        ("Prof. Xu", "Professor Xu"),
        ("St. Louis", "Saint Louis"),
        ("St. Patrick's Day", "Saint Patrick's Day"),
        ("on Main St.", "on Main Street"),
        ("12 Baker St, London", "twelve Baker Street, London"),
        ("apples, pears, etc.", "apples, pears, et cetera."),
        ("apples, etc., and pears", "apples, et cetera, and pears"),
        ("fruit, e.g. apples", "fruit, for example apples"),
        ("fruit, i.e. apples", "fruit, that is apples"),
        ("cats vs. dogs", "cats versus dogs"),
        ("cats vs dogs", "cats versus dogs"),
        # units
        ("5 km", "five kilometers"),
        ("1 km", "one kilometer"),
        ("2.5kg", "two point five kilograms"),
        ("1 kg", "one kilogram"),
        ("30 cm", "thirty centimeters"),
        ("60 mph", "sixty miles per hour"),
        ("20°C", "twenty degrees Celsius"),
        # left alone
        ("MP3", "MP3"),
        ("3D", "3D"),
        ("C++", "C++"),
        # email
        ("mail a.b@example.com", "mail a dot b at example dot com"),
    ],
)
def test_spoken_forms(text: str, expected: str) -> None:
    assert speakable(text) == expected


def test_spoken_forms_in_the_plan_but_not_the_transcript() -> None:
    segments = plan("It costs $2.50, about 3.5% more.")
    assert (
        spoken(segments)
        == "It costs two dollars and fifty cents, about three point five percent more."
    )
    assert plan_transcript(segments) == "It costs $2.50, about 3.5% more."


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (19, "nineteen"),
        (20, "twenty"),
        (99, "ninety-nine"),
        (1001, "one thousand one"),
        (10**12, "one trillion"),
        (-7, "minus seven"),
        (10**15, "one zero zero zero zero zero zero zero zero zero zero zero zero zero zero zero"),
    ],
)
def test_cardinal(n: int, words: str) -> None:
    assert cardinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (5, "fifth"), (8, "eighth"), (9, "ninth"), (20, "twentieth"),
     (33, "thirty-third"), (1000, "one thousandth"), (111, "one hundred eleventh")],
)  # fmt: skip
def test_ordinal(n: int, words: str) -> None:
    assert ordinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1066, "ten sixty-six"), (1900, "nineteen hundred"), (2000, "two thousand"),
     (2010, "twenty ten"), (1601, "sixteen oh one"), (999, "nine hundred ninety-nine")],
)  # fmt: skip
def test_year(n: int, words: str) -> None:
    assert year(n) == words


# --- the rules file ------------------------------------------------------------------------------


def test_default_rules_load_from_package_data() -> None:
    rules = default_rules()
    assert {rule.name for rule in rules.directions} >= {"whisper", "laugh", "sigh", "sad"}
    assert rules.ellipsis_ms > 0 and rules.dash_ms > 0
    assert "really" in rules.emphasis_words


def test_rules_are_data() -> None:
    rules = parse_rules(
        """
        [[directions]]
        name = "robot"
        patterns = ["beep", "boop"]
        length = 1.5
        volume = 0.5
        pause_ms = 90
        """
    )
    assert rules.match("beeps loudly") == ProsodyChange(length=1.5, volume=0.5, pause_ms=90)
    assert rules.match("whispers") is None
    segments = plan_speech("[boops] Hello.", DeliveryState(rules=rules))
    assert segments[0] == Pause(90)
    assert isinstance(segments[1], Speak) and segments[1].prosody.length_scale == 1.5


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[[directions]]\nname = 'x'\npatterns = ['a']\nvolume = 0", "directions.0.volume"),
        ("[[directions]]\nname = 'x'\npatterns = []", "directions.0.patterns"),
        ("[[directions]]\nname = 'x'\npatterns = ['(']", "directions.0.patterns (x): bad pattern"),
        ("[[directions]]\nname = 'x'\npatterns = ['a']\nspeed = 2", "directions.0.speed"),
        ("[pauses]\nellipsis_ms = -1", "pauses.ellipsis_ms"),
        ("not toml =", "not valid TOML"),
    ],
)
def test_bad_rules_name_the_source_and_field(document: str, message: str) -> None:
    with pytest.raises(DeliveryRulesError, match=r"my-rules\.toml") as error:
        parse_rules(document, "my-rules.toml")
    assert message in str(error.value)


def test_no_rules_still_strips_directions() -> None:
    segments = plan_speech("*whispers* Hi.", DeliveryState(rules=DeliveryRules()))
    assert speaks(segments) == [Speak("Hi.", BASE, " Hi.")]
