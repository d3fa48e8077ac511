"""Calibration sets, INT8 (Q/DQ) and FP16 conversion (import edgeseg.calib). Torch-free."""
