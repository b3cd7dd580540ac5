"""The building parts of mmdetection's one-stage dense heads (RetinaNet, FCOS, ATSS, GFL, YOLOX) as pure,
tested functions and small classes with mmdetection 3.3's semantics: prior generators, box coders,
assigners (AssignResult convention), losses, test-time post-processing, a registry that builds them from
YAML specs, and per family a class that computes the losses, the assignment and the predictions from a
head's raw outputs. Nothing here holds learnable parameters; the nn.Module heads live in models/.
"""
