"""Fitting: the CNN and musicnn recipes, batches, augmentation, distillation, baseline, cross-validation."""
