"""Read Anime4K mpv user-shader files (``.glsl``) into plain data: passes, convolution terms, networks.

An Anime4K shader is a list of passes. Each pass starts with ``//!`` directives (DESC, HOOK, BIND, SAVE, WIDTH,
HEIGHT, COMPONENTS, WHEN) followed by GLSL. The CNN passes are fully unrolled: every 3×3 (or 1×1) convolution is
written as ``result += mat4(16 weights) * go_k(dx, dy);`` terms over CReLU-activated inputs
(``max(t, 0.0)`` / ``max(-t, 0.0)``), then ``result += vec4(4 biases);``. This module turns that text into
numbers and structure, with every unsupported construct reported as a :class:`ShaderError` naming file and line.
Building PyTorch modules from the result is :mod:`raven_avatar.engine.anime4k.modules`' job.

Files may be single networks (``Anime4K_Upscale_CNN_x2_S.glsl``) or several concatenated
(``Anime4K_ModeA.glsl``); :func:`parse_shader` groups consecutive passes into named networks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

_DIRECTIVES = ("DESC", "HOOK", "BIND", "SAVE", "WIDTH", "HEIGHT", "COMPONENTS", "WHEN")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class ShaderError(ValueError):
    """A shader file we cannot read: the message names the file and the line."""

    def __init__(self, path: str | Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = str(path)
        self.line = line


@dataclass
class ShaderPass:
    """One ``//!DESC`` block: its directives and its GLSL body lines (with line numbers)."""

    path: str
    line: int
    desc: str = ""
    hook: str = ""
    binds: list[str] = field(default_factory=list)
    save: str | None = None
    width: str | None = None
    height: str | None = None
    components: int | None = None
    when: str | None = None
    body: list[tuple[int, str]] = field(default_factory=list)

    def error(self, line: int, message: str) -> ShaderError:
        return ShaderError(self.path, line, f"pass {self.desc!r}: {message}")

    @property
    def output(self) -> str:
        """The texture this pass writes: SAVE, or the hooked texture when there is none."""
        return self.save or self.hook


@dataclass(frozen=True)
class Input:
    """One ``go_k``/``g_k`` macro: a bound texture, read raw (sign 0), as ``max(t, 0)`` (+1) or ``max(-t, 0)`` (-1)."""

    texture: str
    sign: int


@dataclass
class ConvPass:
    """A convolution pass: ``result = sum_k W_k · input_k(dx, dy) + bias`` (+ the hooked input when residual).

    ``terms`` holds ``(input index, dx, dy, 4×4 weights [out lane, in lane])``; dx is the column offset, dy the row.
    """

    source: ShaderPass
    inputs: list[Input]
    terms: list[tuple[int, int, int, list[list[float]]]]
    bias: list[float]
    residual: str | None

    @property
    def radius(self) -> int:
        return max((max(abs(dx), abs(dy)) for _, dx, dy, _ in self.terms), default=0)


@dataclass
class DepthToSpacePass:
    """``out[c](2y+i, 2x+j) = tex_c(y, x)[2i+j] + bilinear_up(residual)[c]`` for c in RGB; scale is 2."""

    source: ShaderPass
    channels: list[str]  # texture feeding each of R, G, B
    residual: str | None


@dataclass
class LumaMaxPass:
    """De-ring statistics: the running max of luma over a 1-D window (horizontal or vertical)."""

    source: ShaderPass
    kernel: int
    axis: str  # "x" or "y"
    luma: tuple[float, float, float] | None  # None: reads the previous statistics texture instead of an image


@dataclass
class ClampPass:
    """De-ring clamp: lower each pixel's luma to the local maximum computed by the statistics passes."""

    source: ShaderPass
    luma: tuple[float, float, float]


@dataclass
class PassThroughPass:
    """AutoDownscalePre: in mpv it shrinks MAIN before a second ×2 stage. We never run beyond 2×, so it is
    parsed, recognised and deliberately not executed."""

    source: ShaderPass


@dataclass
class Network:
    """Consecutive passes that share one network name, e.g. ``Upscale_CNN_x2_VL`` or ``Clamp_Highlights``."""

    name: str
    path: str
    passes: list


@dataclass
class ShaderFile:
    path: str
    passes: list[ShaderPass]
    networks: dict[str, Network]


def network_name(desc: str) -> str:
    """``Anime4K-v3.2-Upscale-CNN-x2-(VL)-Conv-4x3x3x3`` -> ``Upscale_CNN_x2_VL`` (the pack's file naming)."""
    name = re.sub(r"^Anime4K-v[\d.]+-", "", desc.strip())
    if name.startswith("De-Ring"):
        return "Clamp_Highlights"
    name = re.sub(r"-(Conv-\d+x\d+x\d+x\d+|Depth-to-Space)$", "", name)
    return name.replace("(", "").replace(")", "").replace("-", "_")


def _split_passes(path: str, text: str) -> list[ShaderPass]:
    passes: list[ShaderPass] = []
    current: ShaderPass | None = None
    in_header = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("//!"):
            key, _, value = line[3:].partition(" ")
            value = value.strip()
            if key not in _DIRECTIVES:
                raise ShaderError(path, lineno, f"unknown directive //!{key}")
            if current is None or not in_header:
                current = ShaderPass(path=path, line=lineno)
                passes.append(current)
                in_header = True
            if key == "BIND":
                current.binds.append(value)
            elif key == "COMPONENTS":
                if not value.isdigit():
                    raise ShaderError(path, lineno, f"//!COMPONENTS needs an integer, got {value!r}")
                current.components = int(value)
            else:
                attr = key.lower()
                if getattr(current, attr):
                    raise ShaderError(path, lineno, f"//!{key} given twice in one pass")
                setattr(current, attr, value)
            continue
        in_header = False
        code = line.split("//", 1)[0].strip()
        if code and current is not None:
            current.body.append((lineno, code))
    for p in passes:
        if not p.desc:
            raise ShaderError(path, p.line, "pass without //!DESC")
        if not p.hook:
            raise ShaderError(path, p.line, f"pass {p.desc!r} without //!HOOK")
    return passes


def _statements(sp: ShaderPass) -> list[tuple[int, str]]:
    """The body as statements (joined across lines until ``;``, ``{`` or ``}``), each with its first line."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for lineno, code in sp.body:
        if not buf:
            start = lineno
        buf = f"{buf} {code}".strip()
        if buf.startswith("#") or buf.endswith((";", "{", "}")):
            out.append((start, buf))
            buf = ""
    if buf:
        raise sp.error(start, f"unterminated statement {buf[:60]!r}")
    return out


def _numbers(sp: ShaderPass, line: int, text: str, count: int, what: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count or not all(re.fullmatch(_NUMBER, p) for p in parts):
        raise sp.error(line, f"{what} needs {count} numeric literals, got {len(parts)}: {text[:80]!r}")
    values = [float(p) for p in parts]
    if not all(math.isfinite(v) for v in values):
        raise sp.error(line, f"{what} has a non-finite literal")
    return values


_MACRO = re.compile(r"#define\s+(\w+)(\(\s*x_off\s*,\s*y_off\s*\))?\s+(.+)")
_TERM = re.compile(
    r"(?:vec4\s+result\s*=|result\s*\+=)\s*mat4\((?P<m>[^()]*)\)\s*\*\s*(?P<macro>\w+)"
    r"(?:\(\s*(?P<dx>" + _NUMBER + r")\s*,\s*(?P<dy>" + _NUMBER + r")\s*\))?\s*;"
)
_BIAS = re.compile(r"(?:vec4\s+result\s*=|result\s*\+=)\s*vec4\((?P<v>[^()]*)\)\s*;")
_RETURN = re.compile(r"return\s+result\s*(?:\+\s*(?P<tex>\w+)_tex\(\s*(?P=tex)_pos\s*\))?\s*;")


def _parse_macro(sp: ShaderPass, line: int, stmt: str) -> tuple[str, Input, bool]:
    m = _MACRO.fullmatch(stmt)
    if not m:
        raise sp.error(line, f"unsupported #define: {stmt[:80]!r}")
    name, has_offset, expr = m.group(1), bool(m.group(2)), re.sub(r"\s+", "", m.group(3))
    sample = r"(\w+)_texOff\(vec2\(x_off,y_off\)\)" if has_offset else r"(\w+)_tex\((\w+)_pos\)"
    forms = ((1, rf"\(max\(\({sample}\),0\.0\)\)"), (-1, rf"\(max\(-\({sample}\),0\.0\)\)"), (0, rf"\({sample}\)"))
    sign, hit = next(((sign, hit) for sign, form in forms if (hit := re.fullmatch(form, expr))), (0, None))
    if not hit or (not has_offset and hit.group(1) != hit.group(2)):
        raise sp.error(line, f"unsupported input expression in #define {name}: {m.group(3)[:80]!r}")
    texture = hit.group(1)
    if texture not in sp.binds:
        raise sp.error(line, f"#define {name} reads texture {texture!r}, which the pass does not //!BIND")
    return name, Input(texture, sign), has_offset


def _parse_conv(sp: ShaderPass) -> ConvPass:
    for what, expr in (("WIDTH", sp.width), ("HEIGHT", sp.height)):
        if expr is not None and not re.fullmatch(r"\w+\.[wh]", expr):
            raise sp.error(
                sp.line, f"convolution passes must keep the size (//!{what} <texture>.{what[0].lower()}), got {expr!r}"
            )
    macros: dict[str, tuple[int, bool]] = {}
    inputs: list[Input] = []
    terms: list[tuple[int, int, int, list[list[float]]]] = []
    bias = [0.0, 0.0, 0.0, 0.0]
    residual = None
    state = "defines"
    for line, stmt in _statements(sp):
        if state == "defines" and stmt.startswith("#define"):
            name, inp, has_offset = _parse_macro(sp, line, stmt)
            if name in macros:
                raise sp.error(line, f"#define {name} given twice")
            macros[name] = (len(inputs), has_offset)
            inputs.append(inp)
        elif state == "defines" and re.fullmatch(r"vec4\s+hook\(\s*\)\s*\{", stmt):
            state = "body"
        elif state == "body" and (m := _TERM.fullmatch(stmt)):
            if (m.group("macro")) not in macros:
                raise sp.error(line, f"unknown input {m.group('macro')!r}")
            index, has_offset = macros[m.group("macro")]
            if has_offset != (m.group("dx") is not None):
                raise sp.error(line, f"input {m.group('macro')!r} used with the wrong number of arguments")
            dx = float(m.group("dx") or 0.0)
            dy = float(m.group("dy") or 0.0)
            if dx != int(dx) or dy != int(dy):
                raise sp.error(line, f"fractional texel offset ({dx}, {dy}) is not supported")
            flat = _numbers(sp, line, m.group("m"), 16, "mat4")
            # GLSL mat4(...) is column-major and mat4 * v sums columns: out[i] = sum_j flat[4j + i] * v[j].
            weights = [[flat[4 * j + i] for j in range(4)] for i in range(4)]
            terms.append((index, int(dx), int(dy), weights))
        elif state == "body" and (m := _BIAS.fullmatch(stmt)):
            bias = [b + v for b, v in zip(bias, _numbers(sp, line, m.group("v"), 4, "vec4"), strict=True)]
        elif state == "body" and (m := _RETURN.fullmatch(stmt)):
            residual = m.group("tex")
            if residual is not None and residual not in sp.binds:
                raise sp.error(line, f"residual texture {residual!r} is not bound")
            state = "returned"
        elif state == "returned" and stmt == "}":
            state = "done"
        else:
            raise sp.error(line, f"unsupported statement: {stmt[:80]!r}")
    if state != "done":
        raise sp.error(sp.line, "convolution pass has no complete 'vec4 hook() { ... return result; }'")
    if not terms:
        raise sp.error(sp.line, "convolution pass has no mat4 terms")
    return ConvPass(sp, inputs, terms, bias, residual)


_D2S_FRACT = re.compile(r"vec2\s+(f\d+)\s*=\s*fract\(\s*(\w+)_pos\s*\*\s*\2_size\s*\)\s*;")
_D2S_INDEX = re.compile(r"ivec2\s+(i\d+)\s*=\s*ivec2\(\s*(f\d+)\s*\*\s*vec2\(\s*2\.0\s*\)\s*\)\s*;")
_D2S_FETCH = re.compile(r"float\s+(c\d)\s*=\s*(\w+)_tex\(.*\)\s*\[\s*(i\d+)\.y\s*\*\s*2\s*\+\s*\3\.x\s*\]\s*;")
_D2S_ALIAS = re.compile(r"float\s+(c\d)\s*=\s*(c\d)\s*;")
_D2S_RETURN = re.compile(
    r"return\s+vec4\(\s*c0\s*,\s*c1\s*,\s*c2\s*,\s*c3\s*\)\s*(?:\+\s*(?P<tex>\w+)_tex\(\s*(?P=tex)_pos\s*\))?\s*;"
)


def _parse_depth_to_space(sp: ShaderPass) -> DepthToSpacePass:
    for what, expr in (("WIDTH", sp.width), ("HEIGHT", sp.height)):
        if not expr or not re.fullmatch(r"\w+\.[wh] 2 \*", expr):
            raise sp.error(sp.line, f"depth-to-space needs //!{what} '<texture>.{what[0].lower()} 2 *', got {expr!r}")
    components: dict[str, str] = {}
    residual = None
    state = "head"
    for line, stmt in _statements(sp):
        if state == "head" and re.fullmatch(r"vec4\s+hook\(\s*\)\s*\{", stmt):
            state = "body"
        elif state == "body" and (_D2S_FRACT.fullmatch(stmt) or _D2S_INDEX.fullmatch(stmt)):
            continue
        elif state == "body" and (m := _D2S_FETCH.fullmatch(stmt)):
            if m.group(2) not in sp.binds:
                raise sp.error(line, f"depth-to-space reads unbound texture {m.group(2)!r}")
            components[m.group(1)] = m.group(2)
        elif state == "body" and (m := _D2S_ALIAS.fullmatch(stmt)):
            if m.group(2) not in components:
                raise sp.error(line, f"{m.group(2)} used before it is set")
            components[m.group(1)] = components[m.group(2)]
        elif state == "body" and (m := _D2S_RETURN.fullmatch(stmt)):
            residual = m.group("tex")
            state = "returned"
        elif state == "returned" and stmt == "}":
            state = "done"
        else:
            raise sp.error(line, f"unsupported statement in depth-to-space: {stmt[:80]!r}")
    if state != "done" or any(f"c{k}" not in components for k in range(3)):
        raise sp.error(sp.line, "depth-to-space pass must set c0, c1, c2 and return vec4(c0, c1, c2, c3)")
    return DepthToSpacePass(sp, [components[f"c{k}"] for k in range(3)], residual)


def _luma_weights(sp: ShaderPass) -> tuple[float, float, float] | None:
    for line, stmt in _statements(sp):
        m = re.search(r"dot\(\s*vec4\(([^()]*)\)\s*,\s*rgba\s*\)", stmt)
        if m:
            r, g, b, a = _numbers(sp, line, m.group(1), 4, "luma vec4")
            if a != 0.0:
                raise sp.error(line, "luma weights on alpha are not supported")
            return (r, g, b)
    return None


def _parse_luma_max(sp: ShaderPass) -> LumaMaxPass:
    text = "\n".join(code for _, code in sp.body)
    size = re.search(r"#define\s+KERNELSIZE\s+(\d+)", text)
    if not size or int(size.group(1)) % 2 != 1:
        raise sp.error(sp.line, "statistics pass needs '#define KERNELSIZE <odd integer>'")
    flat = re.sub(r"\s+", "", text)
    if "vec2(i-KERNELHALFSIZE,0)" in flat:
        axis = "x"
    elif "vec2(0,i-KERNELHALFSIZE)" in flat:
        axis = "y"
    else:
        raise sp.error(sp.line, "statistics pass: cannot tell whether the window is horizontal or vertical")
    luma = _luma_weights(sp)
    if luma is None and "STATSMAX_texOff" not in flat:
        raise sp.error(sp.line, "statistics pass reads neither image luma nor STATSMAX")
    return LumaMaxPass(sp, int(size.group(1)), axis, luma)


def _parse_clamp(sp: ShaderPass) -> ClampPass:
    luma = _luma_weights(sp)
    flat = re.sub(r"\s+", "", "\n".join(code for _, code in sp.body))
    if luma is None or "min(current_luma,STATSMAX_tex(HOOKED_pos).x)" not in flat:
        raise sp.error(sp.line, "clamp pass must lower luma to STATSMAX: unsupported body")
    return ClampPass(sp, luma)


def _interpret(sp: ShaderPass):
    name = network_name(sp.desc)
    if name == "Clamp_Highlights":
        return _parse_clamp(sp) if sp.desc.endswith("Clamp") else _parse_luma_max(sp)
    if name.startswith("AutoDownscalePre"):
        return PassThroughPass(sp)
    if sp.desc.endswith("Depth-to-Space"):
        return _parse_depth_to_space(sp)
    if "-Conv-" in sp.desc:
        return _parse_conv(sp)
    raise sp.error(sp.line, f"unknown kind of pass {sp.desc!r}")


def parse_shader(text: str, path: str | Path = "<string>") -> ShaderFile:
    """Parse shader text into passes and networks; raises :class:`ShaderError` (file:line) on anything unknown."""
    path = str(path)
    passes = _split_passes(path, text)
    if not passes:
        raise ShaderError(path, 1, "no //!DESC passes found: not an mpv user shader")
    networks: dict[str, Network] = {}
    previous = None
    for sp in passes:
        name = network_name(sp.desc)
        if name != previous and name in networks:
            raise ShaderError(path, sp.line, f"network {name!r} appears twice, not as one block")
        networks.setdefault(name, Network(name, path, [])).passes.append(_interpret(sp))
        previous = name
    return ShaderFile(path, passes, networks)


def load_shader(path: str | Path) -> ShaderFile:
    """Parse a ``.glsl`` file from disk."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShaderError(path, 0, f"cannot read shader: {exc}") from exc
    return parse_shader(text, path)
