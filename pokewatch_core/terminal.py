"""Text that reaches a terminal: names and values from runs, files and plugins may hold
control characters (``\\x1b[2J`` in a run name clears the screen), so everything printed goes
through ``printable``."""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def printable(text: object) -> str:
    """``text`` with every non-printable character (C0/C1 controls, DEL, line separators,
    bidi overrides, ...) escaped as ``\\xNN`` / ``\\uNNNN``; printable text is unchanged."""
    value = str(text)
    if value.isprintable():
        return value
    out = []
    for ch in value:
        if ch.isprintable():
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def printable_lines(text: object) -> str:
    """``printable`` applied line by line: the line breaks of the text itself stay."""
    return "\n".join(printable(line) for line in str(text).split("\n"))
