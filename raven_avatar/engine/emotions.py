"""Emotion templates: a target pose plus cel strengths per emotion, where they are found, and how they are saved.

File format (the reference's)::

    {"<emotion>": {"pose": {<pose key>: float, ...}, "cels": {<cel>: float, ...}}}

``cels`` may also be a list of ``[name, value]`` pairs (the reference's batch ``_emotions.json`` writes that). Missing
keys are 0; unknown keys, non-numbers and out-of-range values are reported and skipped or clamped.

Lookup, per emotion, first found wins:

1. the character's own ``NAME_emotions.json``, then ``_emotions.json``, in the character's folder;
2. the user's templates, ``<user data dir>/emotions/<emotion>.json`` (what the pose editor saves);
3. the factory templates, ``raven_avatar/assets/emotions/_defaults.json``.

User files are never lost: every overwrite and every factory reset first copies the files it replaces into a
timestamped folder under ``<user data dir>/emotions/backups/``, which :func:`restore_backup` puts back. The newest
:data:`KEEP_BACKUPS` (20) are kept, plus any the user pinned (:func:`pin_backup`); :func:`backups` lists them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from raven_avatar.engine.character import SUPPORTED_CELS
from raven_avatar.engine.fileio import JsonFileError, StagedFolder, atomic_write, atomic_write_json, read_json
from raven_avatar.engine.paths import asset_path, user_data_dir
from raven_avatar.engine.pose import KEYS, pose_from_dict, pose_to_dict
from raven_avatar.engine.wording import plural

log = logging.getLogger(__name__)

#: The 28 go-emotions labels (the distilBERT classifier's output), sorted.
EMOTION_NAMES: tuple[str, ...] = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "neutral",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
)

#: The all-zero reset pose's name in ``_defaults.json``.
ZERO = "zero"
DEFAULTS_FILE = "_defaults.json"
BACKUPS_DIR = "backups"
#: A file inside every backup folder this module makes; :func:`restore_backup` accepts no folder without it.
BACKUP_MARKER = ".raven-avatar-backup"
#: How many unpinned backups of one templates folder are kept (older ones are deleted after each new backup).
KEEP_BACKUPS = 20
BEFORE_RESTORE = "before-restore"
_MANIFEST = "manifest.json"
_PIN = "PINNED"
_FILE_RE = re.compile(r"[^./\\\x00][^/\\\x00]{0,250}\.json")  # a template file name: no folders, not hidden
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class TemplateError(ValueError):
    """An emotion file cannot be read at all (malformed JSON, wrong shape); the message names the file."""


@dataclass
class EmotionTemplate:
    """One emotion: all 45 pose values (reference keys, THA3 order) and all 16 cel strengths (canonical order)."""

    name: str
    pose: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KEYS, 0.0))
    cels: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUPPORTED_CELS, 0.0))
    problems: list[str] = field(default_factory=list, compare=False, repr=False)  # what parsing fixed up

    def pose_vector(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The pose as a ``(45,)`` tensor."""
        return pose_from_dict(self.pose, dtype=dtype)[0]

    def to_json(self) -> dict[str, dict[str, float]]:
        return {"pose": dict(self.pose), "cels": dict(self.cels)}


def validate_emotion_name(name: str) -> str:
    """Return ``name`` if it is safe as an emotion name and file stem, else raise ``ValueError`` saying why."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid emotion name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit "
            "(no path separators, dots or spaces)"
        )
    return name


def _parse_cels(raw: object, where: str, problems: list[str]) -> dict[str, float]:
    cels = dict.fromkeys(SUPPORTED_CELS, 0.0)
    if isinstance(raw, Mapping):
        items: Iterable[object] = raw.items()
    elif isinstance(raw, list):
        items = raw
    else:
        problems.append(f"{where}: 'cels' must be a dict or a list of [name, value] pairs, got {type(raw).__name__}")
        return cels
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            problems.append(f"{where}: cel entry {item!r} is not a [name, value] pair; ignored")
            continue
        name, value = item
        if name not in cels:
            problems.append(f"{where}: unknown cel {name!r} ignored")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{where}: cel {name}: value {value!r} is not a finite number; used 0")
            continue
        if not 0.0 <= value <= 1.0:
            problems.append(f"{where}: cel {name}: value {value:g} outside [0, 1]; clamped")
        cels[name] = min(max(float(value), 0.0), 1.0)
    return cels


def template_from_json(name: str, data: object, where: str = "") -> EmotionTemplate:
    """Build a template from one parsed ``{"pose": ..., "cels": ...}`` entry; problems go to ``.problems``."""
    where = f"{where}: {name}" if where else name
    problems: list[str] = []
    if not isinstance(data, Mapping):
        problems.append(f"{where}: expected an object with 'pose' and 'cels', got {type(data).__name__}")
        data = {}
    for key in data:
        if key not in ("pose", "cels"):
            problems.append(f"{where}: unknown key {key!r} ignored")
    raw_pose = data.get("pose", {})
    if not isinstance(raw_pose, Mapping):
        problems.append(f"{where}: 'pose' must be an object, got {type(raw_pose).__name__}")
        raw_pose = {}
    vec, pose_problems = pose_from_dict(raw_pose, dtype=torch.float64)  # float64 keeps the JSON values exact
    problems.extend(f"{where}: {p}" for p in pose_problems)
    cels = _parse_cels(data.get("cels", {}), where, problems)
    return EmotionTemplate(name, pose_to_dict(vec), cels, problems)


def _read_json(path: Path) -> object:
    try:
        return read_json(path)
    except JsonFileError as e:
        raise TemplateError(str(e)) from None


def parse_template_file(path: str | os.PathLike[str]) -> dict[str, EmotionTemplate]:
    """Read every emotion in a template file.

    Raises ``FileNotFoundError`` for a missing file and :class:`TemplateError` for malformed JSON (with the line) or
    a file that is not an object of emotions; per-value problems are kept in each template's ``problems``.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, Mapping):
        raise TemplateError(f"{path}: expected a JSON object of emotions, got {type(data).__name__}")
    templates: dict[str, EmotionTemplate] = {}
    for name, entry in data.items():
        try:
            validate_emotion_name(name)
        except ValueError as e:
            raise TemplateError(f"{path}: {e}") from None
        templates[name] = template_from_json(name, entry, path.name)
    return templates


def zero_template(name: str = ZERO) -> EmotionTemplate:
    """The all-zero pose with no cels (the ``[reset]`` pose)."""
    return EmotionTemplate(name)


@dataclass
class TemplateSet:
    """The templates in effect for one character, where each came from, and what was wrong on the way."""

    templates: dict[str, EmotionTemplate]
    sources: dict[str, str]  # emotion -> "character: <file>", "user: <file>" or "factory"
    problems: list[str]
    zero: EmotionTemplate = field(default_factory=zero_template)

    def __getitem__(self, name: str) -> EmotionTemplate:
        try:
            return self.templates[name]
        except KeyError:
            raise KeyError(f"unknown emotion {name!r}; known: {', '.join(self.templates)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __iter__(self) -> Iterator[str]:
        return iter(self.templates)

    def __len__(self) -> int:
        return len(self.templates)

    def summary(self) -> str:
        kinds = [source.split(":", 1)[0] for source in self.sources.values()]
        counts = ", ".join(f"{kinds.count(k)} from {k}" for k in ("character", "user", "factory") if k in kinds)
        lines = [f"{plural(len(self), 'emotion')}: {counts}"]
        lines.extend(f"problem: {p}" for p in self.problems)
        return "\n".join(lines)


def user_templates_dir() -> Path:
    """Where the user's edited templates live (not created until something is saved)."""
    return user_data_dir() / "emotions"


def factory_templates() -> dict[str, EmotionTemplate]:
    """The shipped templates, ``zero`` included."""
    return parse_template_file(asset_path("emotions", DEFAULTS_FILE))


def _character_files(character_path: Path) -> list[Path]:
    folder = character_path.parent
    return [folder / f"{character_path.stem}_emotions.json", folder / "_emotions.json"]


def load_templates(character_path: str | os.PathLike[str] | None = None) -> TemplateSet:
    """Resolve every emotion through the lookup order (module docstring); bad files are reported and skipped."""
    problems: list[str] = []
    layers: list[tuple[str, dict[str, EmotionTemplate]]] = []

    def add_file(kind: str, path: Path, only: str | None = None) -> None:
        try:
            found = parse_template_file(path)
        except FileNotFoundError:
            return
        except (TemplateError, OSError) as e:
            problems.append(f"{e}; skipped")
            return
        if only is not None:
            if only not in found:
                problems.append(f"{path}: has no emotion named {only!r} (the file name); skipped")
                return
            found = {only: found[only]}
        layers.append((f"{kind}: {path}", found))

    if character_path is not None:
        for path in _character_files(Path(character_path)):
            add_file("character", path)
    user_dir = user_templates_dir()
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.json")):
            try:
                validate_emotion_name(path.stem)
            except ValueError as e:
                problems.append(f"{path}: {e}; skipped")
                continue
            add_file("user", path, only=path.stem)
    factory = factory_templates()
    layers.append(("factory", factory))

    templates: dict[str, EmotionTemplate] = {}
    sources: dict[str, str] = {}
    names = sorted({name for _, found in layers for name in found} - {ZERO})
    for name in names:
        source, template = next((s, found[name]) for s, found in layers if name in found)
        templates[name] = template
        sources[name] = source
        problems.extend(f"{source.split(': ', 1)[-1]}: {p}" if source != "factory" else p for p in template.problems)
    zero = factory.get(ZERO, zero_template())
    return TemplateSet(templates, sources, problems, zero)


@dataclass(frozen=True)
class Backup:
    """One backup folder made by this module: when, why, and which template files it holds."""

    path: Path
    created: datetime
    reason: str  # "save-<name>", "reset", "before-restore"
    files: dict[str, bool]  # file name -> whether it existed (False: restoring removes the file)
    pinned: bool

    @property
    def templates_dir(self) -> Path:
        """The folder whose files the backup restores (``<it>/backups/<this backup>``)."""
        return self.path.parent.parent

    def describe(self) -> str:
        """One line: local time, reason, what it holds, pinned."""
        held = [n for n, existed in self.files.items() if existed]
        absent = [n for n, existed in self.files.items() if not existed]
        parts = [", ".join(held) if held else "no files"]
        if absent:
            parts.append(f"restoring removes {', '.join(absent)}")
        when = self.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        return f"{when}  {self.reason:<16} {'; '.join(parts)}{'  [pinned]' if self.pinned else ''}"


def _backup(directory: Path, files: Iterable[Path], reason: str) -> Path:
    """Copy ``files`` into a new timestamped folder ``directory/backups/<time>-<reason>``, then prune old ones.

    The folder is staged and moved in whole, so a killed process never leaves half a backup; the manifest lists
    every file and whether it existed, so a restore also removes files created since; the marker file says the
    folder was made here (:func:`restore_backup` accepts nothing else).
    """
    now = datetime.now(timezone.utc)
    root = directory / BACKUPS_DIR
    target = root / f"{now.strftime('%Y%m%d-%H%M%S-%f')}-{reason}"
    manifest = {}
    with StagedFolder(target, marker=BACKUP_MARKER) as stage:
        for f in files:
            existed = f.is_file()
            if existed:
                shutil.copy2(f, stage.path / f.name)
            manifest[f.name] = existed
        atomic_write_json(stage.path / _MANIFEST, {"created": now.isoformat(), "reason": reason, "files": manifest})
        (stage.path / BACKUP_MARKER).write_text("raven-avatar emotion template backup\n", encoding="utf-8")
        stage.publish()
    prune_backups(directory)
    return target


def read_backup(path: str | os.PathLike[str]) -> Backup:
    """The backup at ``path``, checked: a folder under a ``backups`` folder, with this module's marker and a manifest
    naming only template files (``NAME.json``, no folders). Anything else raises :class:`TemplateError`."""
    path = Path(path)
    why = None
    if not path.is_dir():
        why = "not a folder"
    elif path.name.startswith("."):
        why = "a backup still being written"
    elif path.parent.name != BACKUPS_DIR:
        why = f"not inside a {BACKUPS_DIR!r} folder"
    elif not (path / BACKUP_MARKER).is_file():
        why = f"no {BACKUP_MARKER} marker"
    if why is not None:
        raise TemplateError(f"{path}: not an emotion template backup made by raven-avatar ({why})")
    manifest = _read_json(path / _MANIFEST)
    names = manifest.get("files") if isinstance(manifest, Mapping) else None
    if not isinstance(names, Mapping) or not all(isinstance(n, str) and _FILE_RE.fullmatch(n) for n in names):
        raise TemplateError(f"{path / _MANIFEST}: not a backup manifest (it must list only NAME.json file names, "
                            "no folders)")  # fmt: skip
    missing = [n for n, existed in names.items() if existed and not _plain_file(path / n)]
    if missing:
        raise TemplateError(f"{path}: the backup is incomplete, {', '.join(missing)} missing")
    try:
        created = datetime.fromisoformat(str(manifest.get("created")))
    except ValueError:
        created = datetime.fromtimestamp((path / BACKUP_MARKER).stat().st_mtime, timezone.utc)
    reason = str(manifest.get("reason") or path.name.split("-", 3)[-1])
    files = {n: bool(existed) for n, existed in names.items()}
    return Backup(path, created, reason, files, (path / _PIN).is_file())


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def backups(directory: str | os.PathLike[str] | None = None) -> list[Backup]:
    """The valid backups of a templates folder (default: the user's), oldest first; other folders are skipped."""
    directory = Path(directory) if directory is not None else user_templates_dir()
    root = directory / BACKUPS_DIR
    found = []
    for p in sorted(root.iterdir()) if root.is_dir() else ():
        if not p.name.startswith(".") and p.is_dir() and (p / BACKUP_MARKER).is_file():  # ".": being written
            try:
                found.append(read_backup(p))
            except TemplateError as e:
                log.warning("%s", e)
    return sorted(found, key=lambda b: (b.created, b.path.name))


def prune_backups(directory: str | os.PathLike[str] | None = None, keep: int = KEEP_BACKUPS) -> list[Path]:
    """Delete all but the newest ``keep`` unpinned backups of a templates folder; pinned ones are always kept.

    Returns the folders deleted.
    """
    unpinned = [b for b in backups(directory) if not b.pinned]
    doomed = unpinned[: max(0, len(unpinned) - keep)]
    for b in doomed:
        shutil.rmtree(b.path, ignore_errors=True)
    if doomed:
        log.info("pruned %d old emotion template backup(s); %d kept", len(doomed), keep)
    return [b.path for b in doomed]


def pin_backup(path: str | os.PathLike[str], pinned: bool = True) -> Backup:
    """Pin a backup (never pruned) or unpin it; returns it."""
    backup = read_backup(path)
    if pinned:
        atomic_write(backup.path / _PIN, b"pinned by the user: never pruned\n")
    else:
        (backup.path / _PIN).unlink(missing_ok=True)
    return read_backup(path)


def save_template(template: EmotionTemplate, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``template`` as ``<directory>/<name>.json`` atomically (default: the user templates folder).

    An existing file is first copied to a timestamped backup. Returns the written path.
    """
    validate_emotion_name(template.name)
    directory = Path(directory) if directory is not None else user_templates_dir()
    path = directory / f"{template.name}.json"
    if path.exists():
        _backup(directory, [path], f"save-{template.name}")
    atomic_write_json(path, {template.name: template.to_json()})
    return path


def save_emotions_file(
    templates: Mapping[str, EmotionTemplate] | Iterable[EmotionTemplate], path: str | os.PathLike[str]
) -> Path:
    """Write several templates into one file (the batch ``_emotions.json`` format), alphabetical, atomically.

    An existing file is backed up first (into ``backups/`` beside it).
    """
    items = templates.values() if isinstance(templates, Mapping) else templates
    data = {t.name: t.to_json() for t in sorted(items, key=lambda t: t.name)}
    for name in data:
        validate_emotion_name(name)
    path = Path(path)
    if path.exists():
        _backup(path.parent, [path], f"save-{path.stem}")
    atomic_write_json(path, data)
    return path


def factory_reset(names: Iterable[str] | None = None) -> Path:
    """Reset the user's templates for ``names`` (default: all) to factory, after a timestamped backup.

    Resetting removes the user's file, so the factory template shows through (a character's own
    ``_emotions.json`` is not touched). Returns the backup folder, for :func:`restore_backup`.
    """
    directory = user_templates_dir()
    if names is None:
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    else:
        files = [directory / f"{validate_emotion_name(n)}.json" for n in names]
    backup = _backup(directory, files, "reset")
    for f in files:
        f.unlink(missing_ok=True)
    log.info("reset %s to factory; backup in %s", plural(len(files), "emotion template"), backup)
    return backup


def list_backups(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Backup folders, oldest first (default: those of the user templates folder); see :func:`backups`."""
    return [b.path for b in backups(directory)]


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_backup` did: the backup restored, and the backup of the state it replaced."""

    source: Path
    undo: Path | None  # None: the files already matched the backup, nothing was changed
    changed: list[str]


def _matches(backup: Backup) -> list[str]:
    """The file names whose current state differs from the backup's."""
    changed = []
    for name, existed in backup.files.items():
        current = backup.templates_dir / name
        if existed != current.is_file() or existed and current.read_bytes() != (backup.path / name).read_bytes():
            changed.append(name)
    return changed


def restore_backup(path: str | os.PathLike[str] | None = None) -> Restored:
    """Put back the files of a backup folder (default: the newest backup of the user templates folder that is not
    itself a ``before-restore`` backup).

    Idempotent: restoring a backup whose files are already in place changes nothing and makes no new backup, and
    the default never picks the ``before-restore`` backup a restore makes, so restoring "the newest" twice gives
    the same state. Otherwise the files the restore replaces are backed up first (``Restored.undo``), so a restore
    can itself be undone by restoring that folder. Only folders this module made are accepted (:func:`read_backup`),
    and only their ``NAME.json`` files in the templates folder are written or removed.
    """
    if path is None:
        found = backups()
        chosen = [b for b in found if b.reason != BEFORE_RESTORE]
        if not chosen:
            where = user_templates_dir() / BACKUPS_DIR
            only = f" (only {len(found)} {BEFORE_RESTORE!r} backup(s); name one to restore it)" if found else ""
            raise FileNotFoundError(f"no backups to restore in {where}{only}")
        backup = chosen[-1]
    else:
        backup = read_backup(path)
    changed = _matches(backup)
    if not changed:
        log.info("the emotion templates already match %s; nothing to restore", backup.path)
        return Restored(backup.path, None, [])
    directory = backup.templates_dir
    undo = _backup(directory, [directory / n for n in backup.files], BEFORE_RESTORE)
    for name, existed in backup.files.items():
        if existed:
            atomic_write(directory / name, (backup.path / name).read_bytes())
        else:
            (directory / name).unlink(missing_ok=True)
    return Restored(backup.path, undo, changed)
