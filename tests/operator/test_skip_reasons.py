"""Every reason the webhook can give for leaving an opted-in pod alone has a runbook entry
(the annotation, the Event and the metric all carry it; the fuzz test holds the list to
what the webhook really answers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from profilis_operator.admission import ADMISSION_SKIP_REASONS
from profilis_operator.injection import SKIP_REASONS

RUNBOOK = Path(__file__).resolve().parents[2] / "grafana" / "runbook.md"


def runbook_skip_entries() -> list[str]:
    section = RUNBOOK.read_text().split("\n## Injection skips", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (\S+)$", section, re.MULTILINE)


@pytest.mark.parametrize("reason", [*SKIP_REASONS, *ADMISSION_SKIP_REASONS])
def test_the_runbook_has_an_entry_for_each_skip_reason(reason: str) -> None:
    assert reason in runbook_skip_entries()


def test_the_runbook_has_no_entry_for_a_reason_that_cannot_happen() -> None:
    assert sorted(runbook_skip_entries()) == sorted({*SKIP_REASONS, *ADMISSION_SKIP_REASONS})
