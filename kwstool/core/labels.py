"""Label names and folder conventions shared by every stage (declared once)."""

from __future__ import annotations

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
#: Folder of background-noise recordings in the Speech Commands layout.
BACKGROUND_NOISE = "_background_noise_"
#: The ten commands of Speech Commands' 12-class task, in the usual order.
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: The 35 words of Speech Commands v0.02 (v0.01 has the first 30): recognises an archive folder.
SPEECH_COMMANDS_WORDS = frozenset(
    [
        *("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
        *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
        *("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"),
        *("backward", "forward", "follow", "learn", "visual"),
    ]
)


def model_labels(words: list[str] | tuple[str, ...]) -> list[str]:
    """The label list of a model over ``words``: silence, unknown, then the words."""
    return [SILENCE, UNKNOWN, *words]


def is_filler(label: str) -> bool:
    """``_silence_``/``_unknown_`` and any other ``_``-name: never reported as a detection."""
    return label.startswith("_")
