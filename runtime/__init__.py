"""Inference backends, video sources/sinks, the streaming loop, eval, doctor, bench and the TensorRT
facts the builder shares (import edgeseg.runtime).

Never imports torch except inside the torch backend.
"""
