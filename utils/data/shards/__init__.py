"""Streaming datasets in WebDataset tar shards: naming (spec), writing (write), reading (read, loader)."""
