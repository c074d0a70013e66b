"""Terminal colors: :func:`colorize`, re-exported by :mod:`spinfast.logx` as Spinning Up has it."""

from __future__ import annotations

__all__ = ["color2num", "colorize"]

color2num = dict(gray=30, red=31, green=32, yellow=33, blue=34, magenta=35, cyan=36,
                 white=37, crimson=38)


def colorize(string, color, bold=False, highlight=False):
    """Return ``string`` wrapped in ANSI escape codes for ``color`` (see ``color2num``).

    Raises:
        ValueError: unknown color.
    """
    try:
        num = color2num[color]
    except (KeyError, TypeError):
        raise ValueError(f"colorize(): unknown color {color!r}; use one of "
                         f"{', '.join(color2num)}") from None
    attr = [str(num + 10 if highlight else num)]
    if bold:
        attr.append("1")
    return "\x1b[%sm%s\x1b[0m" % (";".join(attr), string)
