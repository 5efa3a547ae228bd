"""Did-you-mean for names a user types (targets, variables, boards, profiles): the closest known name by
difflib's ratio, or nothing when none is close. One place, so every message suggests the same way."""
import difflib


def closest(word, choices, cutoff=0.6):
    """The known name closest to `word` (case-insensitive), or None."""
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), choice)
    match = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[match[0]] if match else None


def did_you_mean(word, choices, template="did you mean `{}`?"):
    """`did you mean `x`?` for the closest name, or '' (for joining into an error line)."""
    match = closest(word, choices)
    return template.format(match) if match else ""
