"""Dual-energy X-ray simulator: bags, threats, clutter, scanner physics, COCO writer."""
