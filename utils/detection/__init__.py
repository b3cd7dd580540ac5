"""detect.py's library side: its options (options.py)."""
