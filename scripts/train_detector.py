#!/usr/bin/env python3
"""Train the demo X-ray detector on simulated bags and export it as an ONNX model directory.

PyTorch is needed here only (install it in a separate environment: `scripts/setup-train`).
The network is a small anchor-free detector of our own design: a residual CNN backbone, a
top-down feature pyramid and one head per stride (8, 16, 32) predicting class scores and
left/top/right/bottom distances, trained with IoU-aware (quality focal) classification and
GIoU box losses. It exports in the yolov8 layout `(1, 4 + C, N)` so the runtime needs nothing
specific to it.

    python scripts/train_detector.py --out models/demo-xray-det --minutes 85

Frames are rendered on the fly by `edge.sim` in data-loader workers (fresh bags every step,
seeds 1,000,000 and up; evaluation seeds start at 9,000,000 and are never trained on).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.pseudocolor import render_pseudocolor  # noqa: E402
from edge.sim.scene import simulate_bag  # noqa: E402
from edge.sim.shapes import CLASSES  # noqa: E402

TRAIN_SEED_BASE = 1_000_000
STRIDES = (8, 16, 32)
PAD_VALUE = 114


# ----------------------------------------------------------------------------- data


def letterbox_params(h: int, w: int, size: int) -> tuple[float, int, int, int, int]:
    """Ultralytics letterbox geometry: scale, resized (w, h) and the top/left padding."""
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (size - nw) / 2, (size - nh) / 2
    return r, nw, nh, int(round(dw - 0.1)), int(round(dh - 0.1))


def render_bag(
    seed: int, class_weights: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A simulated bag as pseudo-colour (H, W, 3), boxes (K, 4) xyxy and class ids (K,).

    `class_weights` (one per class) draws the threat class of threat bags with those odds,
    to spend more of the budget on the classes that are hardest to see.
    """
    threats = None
    if class_weights is not None:
        pick = np.random.default_rng(seed ^ 0x5EED)
        p = np.asarray(class_weights, np.float64) / sum(class_weights)
        threats = [CLASSES[int(pick.choice(len(CLASSES), p=p))]] if pick.random() < 0.6 else []
    frame = simulate_bag(seed, threat_ratio=0.6, threats=threats)
    rgb = render_pseudocolor(frame.high, frame.low)
    boxes = np.array([a.box for a in frame.annotations], np.float32).reshape(-1, 4)
    labels = np.array([CLASSES.index(a.label) for a in frame.annotations], np.float32)
    return rgb, boxes, labels


def make_sample(
    bag: tuple[np.ndarray, np.ndarray, np.ndarray],
    size: int,
    rng: np.random.Generator,
    augment: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One training image (3, size, size) uint8 and its targets (K, 5): class, x1, y1, x2, y2."""
    rgb, boxes, labels = bag
    h, w = rgb.shape[:2]
    if augment and rng.random() < 0.5:
        rgb, boxes = rgb[:, ::-1], boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [w, 0, w, 0]
    if augment and rng.random() < 0.5:
        rgb, boxes = rgb[::-1], boxes[:, [0, 3, 2, 1]] * [1, -1, 1, -1] + [0, h, 0, h]
    r, nw, nh, left, top = letterbox_params(h, w, size)
    if augment and rng.random() < 0.5:  # scale and position jitter around the letterbox
        r *= rng.uniform(0.8, 1.15)
        nw, nh = min(size, int(round(w * r))), min(size, int(round(h * r)))
        r = min(nw / w, nh / h)
        left, top = int(rng.integers(0, size - nw + 1)), int(rng.integers(0, size - nh + 1))
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(
        np.ascontiguousarray(rgb), (nw, nh), interpolation=cv2.INTER_LINEAR
    )
    boxes = boxes * r + [left, top, left, top]
    targets = np.concatenate([labels[:, None], boxes], axis=1).astype(np.float32)
    return canvas.transpose(2, 0, 1).copy(), targets


class SimStream(torch.utils.data.IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Endless simulated bags; each worker renders its own disjoint seeds."""

    def __init__(
        self, size: int, seed_base: int, views: int, class_weights: list[float] | None
    ) -> None:
        self.class_weights = class_weights
        self.size = size
        self.seed_base = seed_base
        self.views = views  # differently augmented views per rendered bag

    def __iter__(self) -> Any:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng(self.seed_base + 7919 * wid)
        k = 0
        while True:
            seed = self.seed_base + wid + nw * k
            k += 1
            bag = render_bag(seed, self.class_weights)
            for _ in range(self.views):
                img, tgt = make_sample(bag, self.size, rng, augment=True)
                yield torch.from_numpy(img), torch.from_numpy(tgt)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([b[0] for b in batch])
    targets = [
        torch.cat([torch.full((len(b[1]), 1), float(i)), b[1]], dim=1) for i, b in enumerate(batch)
    ]
    return images, torch.cat(targets) if targets else torch.zeros((0, 6))


# ----------------------------------------------------------------------------- model


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
        )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c // 2, 1), ConvBN(c // 2, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(ConvBN(cin, cout, 3, 2), *[Residual(cout) for _ in range(blocks)])


class XrayDet(nn.Module):
    """Backbone with strides 2..32, top-down pyramid, heads at strides 8/16/32."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = width // 2, width, width * 2, width * 4, width * 6
        self.num_classes = num_classes
        self.stem = ConvBN(3, c1, 3, 2)
        self.s2 = stage(c1, c2, 1)
        self.s3 = stage(c2, c3, 2)
        self.s4 = stage(c3, c4, 2)
        self.s5 = stage(c4, c5, 2)
        self.lat5 = ConvBN(c5, c4, 1)
        self.fuse4 = nn.Sequential(ConvBN(c4 * 2, c4, 1), Residual(c4))
        self.lat4 = ConvBN(c4, c3, 1)
        self.fuse3 = nn.Sequential(ConvBN(c3 * 2, c3, 1), Residual(c3))
        self.heads = nn.ModuleList()
        for c in (c3, c4, c5):
            self.heads.append(
                nn.ModuleDict(
                    {
                        "stem": nn.Sequential(ConvBN(c, c, 3), ConvBN(c, c, 3)),
                        "cls": nn.Conv2d(c, num_classes, 1),
                        "reg": nn.Conv2d(c, 4, 1),
                    }
                )
            )
        prior = -math.log((1 - 0.01) / 0.01)
        for head in self.heads:
            nn.init.constant_(head["cls"].bias, prior)  # type: ignore[index]
            nn.init.constant_(head["reg"].bias, 1.0)  # type: ignore[index]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.s3(self.s2(self.stem(x)))
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        l5 = self.lat5(p5)
        n4 = self.fuse4(torch.cat([F.interpolate(l5, scale_factor=2.0, mode="nearest"), p4], 1))
        l4 = self.lat4(n4)
        n3 = self.fuse3(torch.cat([F.interpolate(l4, scale_factor=2.0, mode="nearest"), p3], 1))
        return [n3, n4, p5]

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level: class logits (B, C, H, W) and ltrb distances in pixels (B, 4, H, W)."""
        out = []
        for feat, head, stride in zip(self.features(x), self.heads, STRIDES, strict=True):
            h = head["stem"](feat)  # type: ignore[index]
            out.append((head["cls"](h), F.softplus(head["reg"](h)) * stride))  # type: ignore[index]
        return out


def grid_centres(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([(xs.reshape(-1) + 0.5) * stride, (ys.reshape(-1) + 0.5) * stride], dim=1)


class ExportWrapper(nn.Module):
    """Inference graph in the yolov8 layout: (1, 4 + C, N), boxes cx, cy, w, h in pixels."""

    def __init__(self, model: XrayDet, size: int) -> None:
        super().__init__()
        self.model = model
        for i, s in enumerate(STRIDES):
            self.register_buffer(
                f"centres{i}", grid_centres(size // s, size // s, s, torch.device("cpu"))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, (cls, reg) in enumerate(self.model(x)):
            b = cls.shape[0]
            centres = getattr(self, f"centres{i}")
            reg = reg.flatten(2)  # (B, 4, HW)
            x1 = centres[:, 0] - reg[:, 0]
            y1 = centres[:, 1] - reg[:, 1]
            x2 = centres[:, 0] + reg[:, 2]
            y2 = centres[:, 1] + reg[:, 3]
            box = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
            outs.append(
                torch.cat([box, torch.sigmoid(cls.flatten(2))], dim=1).reshape(
                    b, -1, centres.shape[0]
                )
            )
        return torch.cat(outs, dim=2)


# ----------------------------------------------------------------------------- loss


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and GIoU of xyxy boxes (N, 4)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    enc = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (enc - union) / enc


RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e8))


def detection_loss(
    outputs: list[tuple[torch.Tensor, torch.Tensor]],
    targets: torch.Tensor,
    batch: int,
    num_classes: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """FCOS-style assignment (scale ranges, centre sampling), quality focal + GIoU losses."""
    device = outputs[0][0].device
    cls_all, box_all, ctr_all, stride_all, lo_all, hi_all = [], [], [], [], [], []
    for (cls, reg), stride, (lo, hi) in zip(outputs, STRIDES, RANGES, strict=True):
        _, _, h, w = cls.shape
        centres = grid_centres(h, w, stride, device)
        cls_all.append(cls.flatten(2).transpose(1, 2))  # (B, HW, C)
        r = reg.flatten(2).transpose(1, 2)  # (B, HW, 4)
        box_all.append(torch.cat([centres - r[..., :2], centres + r[..., 2:]], dim=2))
        ctr_all.append(centres)
        n = centres.shape[0]
        stride_all.append(torch.full((n,), float(stride), device=device))
        lo_all.append(torch.full((n,), lo, device=device))
        hi_all.append(torch.full((n,), hi, device=device))
    logits = torch.cat(cls_all, 1).float()
    pred_boxes = torch.cat(box_all, 1).float()
    centres = torch.cat(ctr_all)
    strides, lo, hi = torch.cat(stride_all), torch.cat(lo_all), torch.cat(hi_all)

    cls_target = torch.zeros_like(logits)
    pos_pred, pos_gt = [], []
    for b in range(batch):
        gt = targets[targets[:, 0] == b]
        if len(gt) == 0:
            continue
        gboxes = gt[:, 2:6]
        labels = gt[:, 1].long()
        left = centres[:, None, 0] - gboxes[None, :, 0]
        t = centres[:, None, 1] - gboxes[None, :, 1]
        r = gboxes[None, :, 2] - centres[:, None, 0]
        bm = gboxes[None, :, 3] - centres[:, None, 1]
        ltrb = torch.stack([left, t, r, bm], dim=2)  # (N, G, 4)
        inside = ltrb.min(dim=2).values > 0
        gc = (gboxes[:, :2] + gboxes[:, 2:]) / 2
        radius = strides[:, None] * 2.5
        near = ((centres[:, None, :] - gc[None]).abs() < radius[..., None]).all(dim=2)
        max_d = ltrb.max(dim=2).values
        in_range = (max_d >= lo[:, None]) & (max_d <= hi[:, None])
        ok = inside & near & in_range
        areas = (gboxes[:, 2:] - gboxes[:, :2]).prod(1)[None].expand_as(ok)
        areas = torch.where(ok, areas, torch.full_like(areas, float("inf")))
        best_area, best = areas.min(dim=1)
        pos = torch.isfinite(best_area)
        idx = pos.nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        g = best[idx]
        pb = pred_boxes[b, idx]
        gb = gboxes[g]
        iou, _ = box_iou_giou(pb.detach(), gb)
        cls_target[b, idx, labels[g]] = iou.clamp(min=0.05).to(cls_target.dtype)
        pos_pred.append(pb)
        pos_gt.append(gb)
    num_pos = max(1.0, float(sum(len(p) for p in pos_pred)))
    prob = logits.sigmoid()
    qfl = F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none") * (
        prob - cls_target
    ).abs().pow(2)
    loss_cls = qfl.sum() / num_pos
    if pos_pred:
        _, giou = box_iou_giou(torch.cat(pos_pred), torch.cat(pos_gt))
        loss_box = (1 - giou).sum() / num_pos
    else:
        loss_box = logits.sum() * 0
    total = loss_cls + 2.0 * loss_box
    return total, {"cls": float(loss_cls), "box": float(loss_box), "pos": num_pos / max(1, batch)}


# ----------------------------------------------------------------------------- export


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export(model: XrayDet, size: int, out: Path, thresholds: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.cpu().eval(), size).eval()
    dummy = torch.zeros(1, 3, size, size)
    onnx_path = out / "model.onnx"
    kwargs: dict[str, Any] = {
        "input_names": ["images"],
        "output_names": ["output0"],
        "opset_version": 17,
    }
    try:
        torch.onnx.export(wrapper, (dummy,), str(onnx_path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(wrapper, (dummy,), str(onnx_path), **kwargs)
    manifest = {
        "name": "demo-xray-det",
        "version": "1.0.0",
        "classes": CLASSES,
        "input": {
            "width": size,
            "height": size,
            "representation": "pseudocolor",
            "layout": "NCHW",
            "scale": 1 / 255,
            "mean": None,
            "std": None,
            "letterbox": True,
            "pad_value": PAD_VALUE,
        },
        "output": {"format": "yolov8", "nms_iou": 0.5},
        "thresholds": thresholds,
        "sha256": {"model.onnx": sha256_file(onnx_path)},
        "training": {
            "script": "scripts/train_detector.py",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "demo-xray-det")
    ap.add_argument("--minutes", type=float, default=85.0, help="wall-clock training budget")
    ap.add_argument(
        "--steps", type=int, default=0, help="stop after this many steps (0: budget only)"
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--width", type=int, default=32, help="channel width of the network")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", type=Path, help="start from these weights (a .pt state dict)")
    ap.add_argument("--warmup", type=int, default=300, help="linear learning-rate warm-up steps")
    ap.add_argument(
        "--class-weights",
        type=float,
        nargs=len(CLASSES),
        metavar="W",
        help=f"odds of each threat class in threat bags, in the order {CLASSES}",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--views", type=int, default=2, help="augmented views per rendered bag")
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = XrayDet(len(CLASSES), args.width)
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location="cpu"))
        print(f"resumed from {args.resume}", flush=True)
    model = model.to(device)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {params / 1e6:.2f} M parameters, device {device}, workers {args.workers}",
        flush=True,
    )
    loader = torch.utils.data.DataLoader(
        SimStream(
            args.size, TRAIN_SEED_BASE + args.seed * 10_000_000, args.views, args.class_weights
        ),
        batch_size=args.batch,
        num_workers=args.workers,
        collate_fn=collate,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers > 0 else None,
    )
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}],
        lr=args.lr,
    )
    budget = args.minutes * 60
    start = time.time()
    warmup = max(1, args.warmup)
    step = 0
    seen = 0
    amp = device.type == "cuda"
    model.train()
    for images, targets in loader:
        elapsed = time.time() - start
        progress = min(1.0, elapsed / budget) if not args.steps else step / args.steps
        if progress >= 1.0:
            break
        lr = (
            args.lr
            * min(1.0, (step + 1) / warmup)
            * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        images = images.to(device, non_blocking=True).float() / 255.0
        targets = targets.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = model(images)
        loss, parts = detection_loss(outputs, targets, images.shape[0], len(CLASSES))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        seen += images.shape[0]
        if step % args.log_every == 0:
            print(
                f"step {step} seen {seen} t {elapsed / 60:.1f} min lr {lr:.2e} loss {float(loss):.3f} "
                f"cls {parts['cls']:.3f} box {parts['box']:.3f} pos/img {parts['pos']:.1f}",
                flush=True,
            )
    print(
        f"trained {step} steps, {seen} images in {(time.time() - start) / 60:.1f} min", flush=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out.parent / f"{args.out.name}.pt")
    export(model, args.size, args.out, {"default": 0.3})
    print(f"exported {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
