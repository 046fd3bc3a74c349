"""Anime4K CNNs in PyTorch, rebuilt from the original mpv GLSL shaders (parsed at run time, never vendored).

- :mod:`.glsl`: shader text -> passes, convolution terms and named networks (with file:line errors).
- :mod:`.modules`: networks -> ``nn.Module`` (Restore / Upscale ×2 CNNs, Clamp_Highlights).
- :mod:`.shaders`: where the shader files come from (PyPI wheel, GitHub pack), cached and checksummed.

The public entry point is :class:`raven_avatar.engine.upscaler.Upscaler`.
"""
