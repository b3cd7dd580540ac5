"""Analysis tools: receptive field, per-layer profile, feature maps, anchors, loss curves, positive samples.

Each module holds the importable logic; the thin command-line wrappers live in `tools/`.
"""
