"""Library pipelines: plain sequential steps that chain the stages of several packages.

A stage (export, calib-set, calibrate, convert-fp16, build-engine, import) turns inputs into one
artifact and its card. A pipeline here runs several stages one after another (``trt-smoke``'s
export -> calibrate -> build chain, ``bench``'s artifact preparation) and is the only layer that
imports ``edgeseg.export``, ``edgeseg.calib`` and ``edgeseg.runtime`` together; the CLI calls it
(docs/design.md, layers).
"""
