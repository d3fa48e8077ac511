"""Datasets, augmentation and the synthetic scene generator."""
