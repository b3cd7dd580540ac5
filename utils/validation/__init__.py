"""Validation: options (`ValOptions`), the run (`validate`), and val.py's speed / study tasks."""
from utils.validation.options import STUDY_SIZES, TASKS, ValOptions
from utils.validation.run import find_coco_json, validate

__all__ = ["STUDY_SIZES", "TASKS", "ValOptions", "find_coco_json", "validate"]
