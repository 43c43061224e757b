"""Geometry of the overview's last-hour SVG, as a pure function of the per-minute figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailhooks.api.ui.formatting import hm, ms
from mailhooks.db.dashboard import Minute

WIDTH, HEIGHT, GAP = 600.0, 140.0, 2.0


def last_hour(minutes: Sequence[Minute]) -> dict[str, Any]:
    """Stacked bars (2xx / other) per minute and a mean-latency line, scaled to the busiest minute and the
    slowest mean; the totals and the time span for the caption."""
    step = WIDTH / max(1, len(minutes))
    peak = max([m.ok + m.failed for m in minutes] + [1])
    slowest = max([m.avg_ms for m in minutes if m.avg_ms is not None] + [1.0])
    bars, points = [], []
    for i, m in enumerate(minutes):
        x = i * step + GAP / 2
        ok_h = HEIGHT * m.ok / peak
        fail_h = HEIGHT * m.failed / peak
        bars.append({"x": round(x, 2), "w": round(step - GAP, 2), "ok_y": round(HEIGHT - ok_h, 2),
                     "ok_h": round(ok_h, 2), "fail_y": round(HEIGHT - ok_h - fail_h, 2), "fail_h": round(fail_h, 2),
                     "label": f"{hm(m.start)} UTC: {m.ok} ok, {m.failed} failed"
                              + (f", mean {ms(m.avg_ms)}" if m.avg_ms is not None else "")})
        if m.avg_ms is not None:
            points.append(f"{x + (step - GAP) / 2:.1f},{HEIGHT - HEIGHT * m.avg_ms / slowest * 0.95:.1f}")
    return {
        "width": WIDTH, "height": HEIGHT, "bars": bars, "line": " ".join(points), "peak": peak,
        "slowest": slowest if points else None, "ok": sum(m.ok for m in minutes),
        "failed": sum(m.failed for m in minutes), "start": minutes[0].start if minutes else None,
        "end": minutes[-1].start + 60 if minutes else None,
    }
