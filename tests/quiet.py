"""Animator settings shared by tests: everything random switched off (only emotion targets, breathing and what a
test switches on move)."""

QUIET = {
    "sway_macro_strength": 0.0,
    "sway_micro_strength": 0.0,
    "blink_probability": 0.0,
    "saccade_enabled": False,
    "animefx_enabled": False,
}
