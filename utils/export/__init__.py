"""Export formats beyond export.py's own TorchScript/ONNX writers: in-graph NMS, simplification, OpenVINO."""
