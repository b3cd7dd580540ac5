"""The data pipeline, one concern per file: data YAMLs (data_yaml.py parses, files.py finds images and labels),
label caches and checks, image reading and decoding, augmentation and mosaic, the dataset and loaders
(dataloaders.py), the resumable sample order, image weights, detect.py's sources, the demo dataset, tar shards."""
