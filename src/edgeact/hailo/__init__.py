"""The Hailo path for the Hailo-8L, Hailo-8 and Hailo-10H (docs/HAILO.md): Hailo-ready export
(split/full), lint, calibration, model script, Dataflow Compiler driver (DFC 3.x or 5.x by board),
precision emulation, and the Pi's device check.

Hailo's SDKs are imported lazily inside functions: edgeact imports, tests and runs without them.
The Pi-side modules (part, runtime, check) need neither torch nor onnx.
"""
