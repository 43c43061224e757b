"""``make chaos`` itself: its quickest scenario, small, so the operator's fault suite cannot rot."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_chaos_runner_reports_a_receiver_outage_with_nothing_lost() -> None:
    done = subprocess.run([sys.executable, "-m", "chaos.run", "--only", "receiver-outage", "--seconds", "1.5",
                           "--rate", "40"], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| receiver-outage"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    acknowledged, delivered, lost, unrecorded = int(cells[3]), int(cells[4]), int(cells[6]), int(cells[7])
    assert acknowledged >= 100 and delivered == acknowledged and lost == 0 and unrecorded == 0, row
