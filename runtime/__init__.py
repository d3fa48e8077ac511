"""Inference backends, video sources/sinks, the streaming loop and bench (import edgeseg.runtime).

Never imports torch except inside the torch backend.
"""
