"""Training pieces used by train.py: options, optimizer, LR schedule, AMP, DDP, epoch loop, checkpoints, loggers."""
