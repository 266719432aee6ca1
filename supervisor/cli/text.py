"""Text that came from jobs, made safe to print on a terminal.

Task names, error messages and tracebacks are written by whoever enqueued or
ran a job. Printed as they are, an escape sequence in one could clear the
screen, retitle the terminal or hide itself, and a carriage return or newline
could fake a line of output. So every control character is shown escaped
(`\\x1b`, `\\r`), as are the Unicode controls that reorder text; only the
newlines and tabs of a multi-line field such as a traceback are kept.
"""

from __future__ import annotations

import re

# DEL, the C1 controls, and the Unicode marks that reorder or break text.
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_ANY = re.compile(f"[\x00-\x1f{_OTHERS}]")
_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")  # keeps \t (09) and \n (0a)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(value: object, *, lines: bool = False) -> str:
    """`value` as text with control characters escaped; `lines` keeps newlines and tabs."""
    return (_BUT_LINES if lines else _ANY).sub(_escape, str(value))
