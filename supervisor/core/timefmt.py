"""Times for people: a local timestamp with milliseconds, a short span (`3m05s`).

Shared by the CLI's tables and the dashboard's pages.
"""

from __future__ import annotations

import time
from typing import Any


def stamp(at: Any) -> str:
    """'YYYY-MM-DD HH:MM:SS.mmm' in local time, '-' for None."""
    if at is None:
        return "-"
    at = float(at)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def span(seconds: Any) -> str:
    """A duration in its largest two units: 12ms, 3.4s, 5m07s, 2h03m, 1d04h; '-' for None."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600):02d}h"
