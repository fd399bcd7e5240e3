"""Training: the only part of fastnst that imports Lightning and Hydra."""
