"""The Hailo-8/8L path (docs/HAILO.md): Hailo-ready export (split/full), lint, calibration, model
script, Dataflow Compiler driver, precision emulation, HailoRT runtime and device check.

Hailo's SDKs are imported lazily inside functions: edgeact imports, tests and runs without them.
The Pi-side modules (part, runtime, check) need neither torch nor onnx.
"""
