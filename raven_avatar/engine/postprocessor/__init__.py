"""Postprocessor: anime-style video effects on linear RGBA frames, as plain tensor functions with GUI metadata.

The pipeline builds a :class:`Postprocessor` from a chain (the settings format ``[[name, {params}], ...]``) and
calls it once per frame with the time in seconds::

    pp = Postprocessor(settings["postprocessor_chain"])   # raises ChainError listing every problem
    frame = pp(frame, t=time.monotonic() - t0)            # (B, 4, H, W) or (4, H, W), linear RGBA in [0, 1]

The settings editor builds its panels from :func:`filters` (GUI order) and each :class:`FilterSpec`'s
:class:`ParamSpec` list; every filter is also a plain function, e.g. ``bloom(image, threshold=0.5)``.
"""

from . import filters_camera, filters_display, filters_general, filters_light, filters_transport
from .chain import (
    ALIASES,
    DEFAULT_CHAIN,
    REFERENCE_CHAIN,
    ChainError,
    Postprocessor,
    Problem,
    normalize_chain,
    repair_chain,
    validate_chain,
)
from .colorspace import linear_to_srgb, luminance, rgb_to_yuv, srgb_to_linear, yuv_to_rgb
from .filters_camera import chromatic_aberration, noise, vignetting, zoom
from .filters_display import banding, crt, monochrome_display, scanlines, translucent_display
from .filters_general import desaturate
from .filters_light import atmospheric_dust, bloom, outline
from .filters_transport import (
    analog_lowres,
    analog_rippling_hsync,
    analog_runaway_hsync,
    analog_vhs_headswitching,
    analog_vhs_noise,
    analog_vhsglitches,
    analog_vhstracking,
    chroma_subsample,
    digital_glitches,
)
from .registry import CATEGORIES, KINDS, FilterSpec, FilterState, ParamSpec, filters, get_filter

__all__ = [
    "ALIASES",
    "CATEGORIES",
    "DEFAULT_CHAIN",
    "REFERENCE_CHAIN",
    "KINDS",
    "ChainError",
    "FilterSpec",
    "FilterState",
    "ParamSpec",
    "Postprocessor",
    "Problem",
    "filters",
    "get_filter",
    "normalize_chain",
    "repair_chain",
    "validate_chain",
    "linear_to_srgb",
    "srgb_to_linear",
    "luminance",
    "rgb_to_yuv",
    "yuv_to_rgb",
    "analog_lowres",
    "analog_rippling_hsync",
    "analog_runaway_hsync",
    "analog_vhs_headswitching",
    "analog_vhs_noise",
    "analog_vhsglitches",
    "analog_vhstracking",
    "atmospheric_dust",
    "banding",
    "bloom",
    "chroma_subsample",
    "chromatic_aberration",
    "crt",
    "desaturate",
    "digital_glitches",
    "monochrome_display",
    "noise",
    "outline",
    "scanlines",
    "translucent_display",
    "vignetting",
    "zoom",
]

del filters_camera, filters_display, filters_general, filters_light, filters_transport
