"""The standard suite's sampling: every class x clutter x occlusion x rotation x size cell,
balanced prefixes, and bags that land in the cell they were drawn for."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from edge.sim.shapes import CLASSES
from edge.sim.suite import (
    CELL_COUNT,
    CLUTTER_LEVELS,
    OCCLUSIONS,
    ROTATIONS,
    SIZES,
    STANDARD_COUNT,
    Cell,
    all_cells,
    cell_order,
    plan,
    render_cell,
    write_standard_dataset,
)
from edge.validation import suite_cmd

DIMENSIONS = {
    "threat": CLASSES,
    "clutter": CLUTTER_LEVELS,
    "occluded": OCCLUSIONS,
    "rotation": ROTATIONS,
    "size": SIZES,
}


def test_the_default_count_covers_every_cell_once_with_as_many_clean_bags() -> None:
    assert CELL_COUNT == 5 * 3 * 3 * 4 * 3 == 540
    assert STANDARD_COUNT == 1080 >= 1000
    assert (suite_cmd.STANDARD_COUNT, suite_cmd.STANDARD_SEED) == (1080, 20_000_000)
    bags = plan(STANDARD_COUNT)
    threat = [c for c in bags if c is not None]
    assert len(threat) == len(bags) - len(threat) == 540  # half clean
    assert set(threat) == set(all_cells()) and len(set(cell_order())) == CELL_COUNT


@pytest.mark.parametrize("count", [20, 48, 80, 121])
def test_small_counts_spread_over_every_value_of_every_dimension(count: int) -> None:
    threat = [c for c in plan(count) if c is not None]
    assert len(threat) == (count + 1) // 2
    for name, values in DIMENSIONS.items():
        seen = Counter(getattr(c, name) for c in threat)
        if len(threat) >= 12:  # enough for every value of the largest dimension twice
            assert set(seen) == set(values), name
        assert max(seen.values()) - min(seen.values()) <= 2, (name, seen)


@pytest.mark.parametrize(
    "cell",
    [
        Cell("blade", "high", "heavy", "45", "large"),
        Cell("gun", "high", "none", "0", "small"),
        Cell("bottle", "low", "partial", "135", "medium"),
    ],
)
def test_a_bag_lands_in_the_cell_it_was_drawn_for(cell: Cell) -> None:
    frame, attempts = render_cell(cell, seed=31_000_000)
    assert Cell.of(frame) == cell
    assert 1 <= attempts <= 16
    assert frame.attributes["threat"] == cell.threat


def test_a_small_suite_reports_its_coverage(tmp_path: Path) -> None:
    summary = write_standard_dataset(tmp_path / "sim", count=6, seed=32_000_000)
    assert (summary.images, summary.threat_images) == (6, 3)
    assert summary.covered == {c for c in plan(6) if c is not None}
    assert summary.missed == []
    assert len(summary.uncovered()) == CELL_COUNT - 3
    doc = json.loads((tmp_path / "sim" / "annotations.json").read_text())
    assert [len([a for a in doc["annotations"] if a["image_id"] == i]) for i in range(1, 7)] == [
        1, 0, 1, 0, 1, 0
    ]  # fmt: skip
    assert {"annotations.json", "images/000001.png", "images/000001_high.png"} <= set(summary.files)
