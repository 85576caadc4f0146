"""Texts that sound like a wake word without being it: synthetic negatives for ``kwstool synth
WORD --confusables``.

* The Speech Commands keywords have a hand-made list in :data:`TABLE` (near rhymes, words that
  share the vowel or the consonants, and the words the shipped model confuses with them: *one*
  and *five* with *on*, *eight* and *two* with *go*, *seven* with *stop*).
* Any other word: its parts alone when it has several (*hey lamp* -> *hey*, *lamp*), then the
  :data:`NEAREST` words of :data:`WORDS` (a small list of common English words) whose
  pronunciation is closest: edit distance of espeak-ng's phoneme strings (``espeak-ng -x``;
  spelling when espeak-ng is missing), for every part; a part swapped for its nearest word
  (*hey lamp* -> *hey lamb*).
* Then :data:`PHRASES_PER_WORD` running phrases of :data:`PHRASES` that do not say the word.

A homophone of the keyword (same phonemes, *know* for *no*) is never a negative: it is left out.
"""

from __future__ import annotations

import re

TABLE: dict[str, tuple[str, ...]] = {
    "yes": ("yet", "yeah", "guess", "less", "mess", "chess", "says", "dress", "yellow", "address"),
    "no": ("go", "toe", "snow", "nose", "note", "now", "new", "low", "known", "nope"),
    "up": ("cup", "pup", "hop", "op", "pub", "cut", "top", "upper", "of", "hup"),
    "down": ("town", "gown", "brown", "clown", "done", "dawn", "round", "noun", "dime", "loud"),
    "left": ("lift", "loft", "laughed", "lef", "theft", "leaf", "less", "deft", "lefty", "let"),
    "right": ("light", "bright", "rate", "ride", "white", "wide", "fight", "night", "rice", "ripe"),
    "on": ("one", "five", "own", "an", "in", "gone", "upon", "don", "john", "honest"),
    "off": ("of", "cough", "golf", "often", "oft", "laugh", "scoff", "toff", "cuff", "half"),
    "stop": ("seven", "step", "shop", "top", "stock", "stuff", "spot", "drop", "stomp", "stoop"),
    "go": ("eight", "two", "no", "toe", "goat", "ago", "grow", "though", "bow", "gold"),
}

# common short English words: the candidates of the generic rule
_WORD_LIST = """
    a about after again air all also am an and any are arm art as ask at away back bad bag ball
    band bank bar base bat bay be bed bee bell best bet big bill bird bit black blue boat body
    book boot born both bow box boy bread bring brown bus but buy by cake call came camp can
    cap car card care cat catch chair change check child city clap class clean clock close coat
    cold come cook cool cop cost could cow cup cut damp dark day dead deal dear deep desk did
    dime dish do dog doll done door dot down draw dream dress drink drive drop dry duck each
    ear early east eat egg end even ever eye face fact fall far farm fast fat feel feet few
    fill find fine fire fish fit five flat floor fly food foot for form four free friend from
    full fun game gate gave get girl give glad glass go gold gone good got great green grow
    had hair half hall hand hat have he head hear heat help hen her here high hill him his hit
    hold hole home hop hope horse hot house how hum hurt ice ill in inch is it jam job jump just
    keep key kid kind king kiss kite lake lamb lame land lane large last late lay lead leaf
    learn leg less let letter lid lie lift light like limp line lip list lit live lock long
    look lost lot loud love low lump made make man many map mat may me meet men milk mind miss
    mix moon more most mother move much mud must my name near neck need nest net never new
    next nice night nine nod nose not note now nut oak odd of old one only open or our out
    own page paint pan park part pass past pay pen pet pick pie pig pin pit place plan play
    pot pull pump put rain ramp ran rat read red rest ride ring road rock room rope rose run
    sad said salt same sand sat saw say sea seat see send set seven shoe shop short show shut
    sick side sign sing sit six sky sleep slow small snow so soft some song soon sound south
    spot stamp star stay step still stone store sun sure table tail take talk tall tap team
    ten than that the them then they thing think this three time tip today told tone too top
    town tree trip try turn two up us use very wait walk wall want warm was wash way we well
    went west wet what when where white who why wide will win wind wish with word work yard
    year yellow yet you young
    apple army baby button city copy daddy dinner even garden happen heavy hobby honey kitten
    lady lazy lucky mirror money morning never number only orange over paper party penny
    people pillow pretty puppy rabbit river silver sister sorry summer sunny tiger tiny
    village wagon water window winter
"""
WORDS = tuple(_WORD_LIST.split())

PHRASES = (
    "what time is it",
    "turn the music louder",
    "call me later please",
    "where did I leave my keys",
    "the weather is nice today",
    "can you hear me now",
    "I will be there in a minute",
    "let me think about it",
    "put the kettle on",
    "open the window",
    "that sounds like a good plan",
    "see you tomorrow morning",
    "how was your day",
    "I forgot my phone at home",
    "please close the door",
    "thank you very much",
)
NEAREST = 8  # phoneme neighbours per part
PHRASES_PER_WORD = 4


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("_", " "))


def says_keyword(text: str, word: str) -> bool:
    """Whether ``text`` contains the keyword (its words, in order, as whole words)."""
    said, key = _words(text), _words(word)
    n = len(key)
    return n > 0 and any(said[i : i + n] == key for i in range(len(said) - n + 1))


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _sounds(words: list[str]) -> list[str]:
    """Phoneme strings (stress marks dropped) of ``words``; their spelling without espeak-ng."""
    from kwstool.data.tts.espeak import phonemes

    said = phonemes(words)
    if said is None:
        return list(words)
    return [re.sub(r"[',\s]", "", p) for p in said]


def nearest(part: str, n: int = NEAREST) -> list[str]:
    """The ``n`` words of :data:`WORDS` that sound most like ``part`` (homophones left out)."""
    candidates = [w for w in WORDS if w != part]
    sounds = _sounds([part, *candidates])
    target = sounds[0]
    scored = []
    for w, s in zip(candidates, sounds[1:]):
        d = _distance(target, s)
        if d > 0 and part not in _words(w):
            scored.append((d / max(len(target), len(s)), abs(len(s) - len(target)), w))
    return [w for _, _, w in sorted(scored)[:n]]


def confusable_texts(word: str) -> list[str]:
    """Confusable words and short phrases for the keyword ``word`` (see module docs)."""
    key = _words(word)
    if len(key) == 1 and key[0] in TABLE:
        texts = list(TABLE[key[0]])
    else:
        texts = list(key) if len(key) > 1 else []
        near = {p: nearest(p) for p in key}
        for p in key:
            texts += near[p]
        if len(key) > 1:  # the phrase with one part swapped for its nearest-sounding word
            texts += [
                " ".join(near[p][0] if i == j else q for j, q in enumerate(key))
                for i, p in enumerate(key)
                if near[p]
            ]
    phrases = [p for p in PHRASES if not says_keyword(p, word)]
    first = sum(map(ord, word)) % len(phrases)  # a different few for each word
    texts += (phrases[first:] + phrases[:first])[:PHRASES_PER_WORD]
    homophones = _homophones(word, texts)
    return [t for t in dict.fromkeys(texts) if t not in homophones and not says_keyword(t, word)]


def _homophones(word: str, texts: list[str]) -> set[str]:
    """The texts that sound exactly like ``word`` (same phonemes)."""
    sounds = _sounds([" ".join(_words(word)), *texts])
    return {t for t, s in zip(texts, sounds[1:]) if s == sounds[0]}
