"""Dataset downloads from the declarative `download:` section of a data YAML (no code from a YAML is run).

spec.py parses the section, fetch.py downloads one file (resume, retries, checksum), archive.py unpacks
safely, install.py puts a dataset in place atomically under a file lock, dataset.py has `ensure_dataset`.
"""
from utils.downloads.dataset import ensure_dataset

__all__ = ["ensure_dataset"]
