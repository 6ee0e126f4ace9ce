"""Small COCO data set and suite folders written for tests (tiny images, no simulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.validation.suite import POLICY_FILE, SUITE_FILE, sha256_file
from edge.validation.suite_build import DatasetEntry, write_manifest, write_policy

CATEGORIES = [{"id": 1, "name": "gun"}, {"id": 2, "name": "knife"}]
SMALL_POLICY = "[slices]\nreport = ['clutter', 'size']\nmin_samples = 1\n"


def write_dataset(folder: Path, images: int = 4, seed: int = 0) -> dict[str, Any]:
    """`images` 64x48 frames (pseudo-colour PNG + 16-bit pair), a gun in every other one."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    doc: dict[str, Any] = {"images": [], "annotations": [], "categories": CATEGORIES}
    for i in range(1, images + 1):
        stem = f"images/{i:04d}"
        cv2.imwrite(str(folder / f"{stem}.png"), rng.integers(0, 255, (48, 64, 3), np.uint8))
        for channel in ("high", "low"):
            pixels = rng.integers(20000, 60000, (48, 64), np.uint16)
            cv2.imwrite(str(folder / f"{stem}_{channel}.png"), pixels)
        doc["images"].append(
            {
                "id": i,
                "file_name": f"{stem}.png",
                "width": 64,
                "height": 48,
                "dual_energy": {"high": f"{stem}_high.png", "low": f"{stem}_low.png"},
                "attributes": {"clutter": "low" if i % 3 else "high", "bag": f"bag-{(i + 1) // 2}"},
            }
        )
        if i % 2:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": [10, 10, 20, 12],
                    "area": 240,
                    "iscrowd": 0,
                    "attributes": {"occluded": "none"},
                }
            )
    write_json(folder / "annotations.json", doc)
    return doc


def write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc))


def make_suite(root: Path, images: int = 4, policy: str | None = SMALL_POLICY) -> Path:
    write_dataset(root / "set", images)
    write_policy(root, policy)
    write_manifest(root, name="tiny", label_version=1, datasets=[DatasetEntry("set")])
    return root


def rehash(root: Path) -> None:
    """Make suite.json vouch for the current annotations and policy (to reach later checks)."""
    doc = json.loads((root / SUITE_FILE).read_text())
    for rel in doc["files"]:
        if rel.endswith("annotations.json") or rel == POLICY_FILE:
            doc["files"][rel] = sha256_file(root / rel)
    write_json(root / SUITE_FILE, doc)


SIM_POLICY = """
[slices]
report = ["clutter", "size"]
gate = ["class", "class x clutter"]
min_samples = 1
[absolute]
pfa_max = 0.5
map50_min = 0.3
[absolute.pd_min]
default = 0.3
gun = 0.8
[non_regression]
bootstrap_rounds = 1000
[latency]
p95_ms_max = 10000.0  # a shared test machine: only a hung detector should fail this
[behaviour]
repeat_frames = 3
flip_frames = 4
flip_min_agreement = 0.5
projection_per_class = 1
projection_min_rate = 0.6
"""


def make_sim_suite(root: Path, seed: int = 40_000_000) -> Path:
    """48 simulated bags: 18 unoccluded guns (6 per clutter level, so a lost class shows
    per slice), 3 of each other class, 18 clean bags."""
    from edge.sim.scene import simulate_bag
    from edge.sim.suite import write_frames
    from edge.validation.suite_build import DatasetEntry, write_manifest, write_policy

    clutter = ("low", "medium", "high")
    specs = [(["gun"], clutter[i % 3]) for i in range(18)]
    specs += [
        ([c], clutter[i % 3]) for c in ("knife", "blade", "scissors", "bottle") for i in range(3)
    ]
    specs += [([], clutter[i % 3]) for i in range(18)]
    order = [specs[i] for i in np.random.default_rng(seed).permutation(len(specs))]

    def bag(i: int, threats: list[str], level: str) -> Any:
        kind = "suitcase" if level == "high" else None  # a tray would lower high clutter
        return simulate_bag(seed + i, threats=threats, clutter=level, bag=kind, occlude=False)

    frames = (bag(i, threats, level) for i, (threats, level) in enumerate(order))
    files = write_frames(root / "sim", frames, {"seed": seed})
    write_policy(root, SIM_POLICY)
    write_manifest(
        root,
        name="test-sim",
        label_version=1,
        datasets=[DatasetEntry("sim")],
        known_hashes={f"sim/{rel}": sha for rel, sha in files.items()},
    )
    return root
