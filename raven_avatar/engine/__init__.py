"""The raven_avatar engine: posing, animation and frame processing, with no GUI imports.

Everything here runs headless (scripts, servers, tests) on the CPU or a CUDA GPU.
"""
