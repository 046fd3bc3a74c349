"""The avatar's emotion follows text as an LLM streams it: classify at sentence ends, change only with hysteresis.

:class:`EmotionFollower` is the decision logic, synchronous and clock-driven (tests give it a fake clock and fake
scores). It takes chunks of any size; it classifies when a sentence ends (``. ! ? …`` followed by white space, or a
line break) and, while a long sentence streams, once ``interval`` seconds have passed since unclassified text
arrived. A new emotion is taken only

- after the current one was held for ``hold`` seconds (a change that comes earlier waits, and is taken when the hold
  time is over if the latest scores still want it);
- when its score beats the current emotion's score by ``margin`` (no flicker between two close labels);
- ``neutral`` instead of the best label when the best score is below ``neutral_threshold``.

:class:`TextEmotion` connects one avatar to a classifier (loaded on first use, from the ``emotion_*`` settings) and
runs a follower on a background thread, so :meth:`TextEmotion.follow` returns at once and classification never
runs on the render thread. ``Avatar.follow_text`` and ``Avatar.set_emotion_from_text`` use it.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from raven_avatar.engine import emotion_text as et

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s|\n")
_MAX_TEXT = 4000  # characters kept of a reply (the classifier reads its last few sentences only)
_RETRY_AFTER = 10.0  # s: a classifier that failed to load is not tried again sooner (one error, not one per chunk)


@dataclass(frozen=True)
class FollowParams:
    """The follower's hysteresis; :meth:`from_settings` reads the ``emotion_*`` animator settings."""

    interval: float = 0.5  # s; 0: classify only at sentence ends
    hold: float = 2.0  # s
    margin: float = 0.1
    neutral_threshold: float = 0.2

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FollowParams:
        return cls(
            interval=settings["emotion_classify_interval_ms"] / 1000.0,
            hold=settings["emotion_hold_time"],
            margin=settings["emotion_margin"],
            neutral_threshold=settings["emotion_neutral_threshold"],
        )


def choose(scores: Mapping[str, float], neutral_threshold: float) -> tuple[str, float]:
    """The best emotion and its score, or ``neutral`` (with the best score) when that is below the threshold."""
    if not scores:
        return et.NEUTRAL, 0.0
    best, score = max(scores.items(), key=lambda kv: kv[1])
    return (best if score >= neutral_threshold else et.NEUTRAL), score


class EmotionFollower:
    """Turns streamed text into emotion changes (see the module docs for the rules).

    Args:
        scores: text -> ``{emotion: score}`` (a classifier's template scores).
        apply: called with the new emotion at each change.
        params: hysteresis parameters (assign :attr:`params` to change them live).
        clock: seconds, monotonic.
        emotion: the emotion shown now.
    """

    def __init__(
        self,
        scores: Callable[[str], Mapping[str, float]],
        apply: Callable[[str], Any] | None = None,
        *,
        params: FollowParams | None = None,
        clock: Callable[[], float] = time.monotonic,
        emotion: str = et.NEUTRAL,
    ) -> None:
        self._scores, self._apply = scores, apply
        self.params = params or FollowParams()
        self.clock = clock
        self.emotion = emotion
        #: The scores of the last classification (None before any).
        self.last_scores: dict[str, float] | None = None
        self._changed_at = -math.inf
        self._pending: dict[str, float] | None = None  # the latest scores, while a wanted change waits for hold
        self._text = ""
        self._scanned = 0  # sentence ends before this index were seen
        self._dirty_since: float | None = None  # when unclassified text arrived

    # --------------------------------------------------------------------------------------------------- input

    def feed(self, chunk: str) -> str | None:
        """Add streamed text; classifies when a sentence ended (or the interval passed). Returns the new emotion
        if it changed, else None."""
        if not chunk:
            return self.poll()
        start = max(self._scanned, len(self._text) - 8)  # a sentence end may straddle two chunks
        self._text += chunk
        if self._dirty_since is None:
            self._dirty_since = self.clock()
        ends = list(_SENTENCE_END.finditer(self._text, start))
        if ends:
            self._scanned = ends[-1].end()
            return self._classify()
        return self.poll()

    def end(self) -> str | None:
        """The stream is over: classify what was not classified yet, then start afresh for the next text."""
        changed = self._classify() if self._dirty_since is not None and self._text.strip() else self.poll()
        self.reset()
        return changed

    def reset(self) -> None:
        """Forget the buffered text (the emotion and its hold time stay)."""
        self._text, self._scanned, self._dirty_since = "", 0, None

    def note(self, emotion: str) -> None:
        """The emotion was changed from elsewhere (e.g. by hand): hold it as if the follower had chosen it."""
        if emotion != self.emotion:
            self.emotion, self._changed_at, self._pending = emotion, self.clock(), None

    # ------------------------------------------------------------------------------------------------- timing

    def poll(self) -> str | None:
        """Do what time made due: classify text that waited ``interval``, take a change whose hold time is over."""
        now = self.clock()
        p = self.params
        if self._dirty_since is not None and p.interval > 0 and now - self._dirty_since >= p.interval:
            return self._classify()
        if self._pending is not None and now - self._changed_at >= p.hold:
            return self.decide(self._pending)
        return None

    def next_due(self) -> float | None:
        """Clock time at which :meth:`poll` has something to do, or None."""
        due = []
        if self._dirty_since is not None and self.params.interval > 0:
            due.append(self._dirty_since + self.params.interval)
        if self._pending is not None:
            due.append(self._changed_at + self.params.hold)
        return min(due) if due else None

    # ------------------------------------------------------------------------------------------------ decision

    def _classify(self) -> str | None:
        if len(self._text) > _MAX_TEXT:
            cut = len(self._text) - _MAX_TEXT // 2
            self._text, self._scanned = self._text[cut:], max(0, self._scanned - cut)
        self._dirty_since = None
        return self.decide(self._scores(self._text))

    def decide(self, scores: Mapping[str, float]) -> str | None:
        """Apply the hysteresis to one set of scores; returns the new emotion if it changed."""
        p = self.params
        self.last_scores = dict(scores)
        wanted, best = choose(scores, p.neutral_threshold)
        if wanted == self.emotion:
            self._pending = None
            return None
        now = self.clock()
        if now - self._changed_at < p.hold:
            self._pending = self.last_scores
            return None
        self._pending = None
        # A confident change must beat the current emotion by the margin; falling back to neutral needs no margin.
        if best >= p.neutral_threshold and best < scores.get(self.emotion, 0.0) + p.margin:
            return None
        self.emotion, self._changed_at = wanted, now
        if self._apply is not None:
            self._apply(wanted)
        return wanted


# ------------------------------------------------------------------------------------------------ for an avatar


class EmotionTarget(Protocol):
    """What :class:`TextEmotion` drives (``Avatar`` is one)."""

    @property
    def settings(self) -> Mapping[str, Any]: ...

    @property
    def emotions(self) -> list[str]: ...

    @property
    def emotion(self) -> str: ...

    def set_emotion(self, name: str) -> None: ...


class TextEmotion:
    """Emotion from text for one avatar: the classifier, the label table and a follower on a background thread.

    Args:
        target: the avatar (settings, emotions, emotion, set_emotion).
        classifier: anything with ``classify(text, last=, recency=) -> {label: score}`` (default: an
            :class:`~raven_avatar.engine.emotion_text.EmotionClassifier` built on first use from the
            ``emotion_model``, ``emotion_device`` and ``emotion_dtype`` settings, and rebuilt when they change).
        clock: the follower's clock.
    """

    def __init__(self, target: EmotionTarget, *, classifier: Any = None, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self._classifier = classifier
        self._given = classifier is not None
        self._built_for: tuple[str, str, str] | None = None
        self._failed: tuple[tuple[str, str, str], Exception, float] | None = None
        self._load_lock = threading.Lock()
        self._step_lock = threading.Lock()  # the follower is used by the background thread and set_from_text
        self._warned: set[str] = set()
        #: The template scores of the last :meth:`set_from_text`, best first (what a GUI shows as the top labels).
        self.last_scores: dict[str, float] = {}
        self.follower = EmotionFollower(self.scores, target.set_emotion, clock=clock, emotion=target.emotion)
        #: The last failure of the background follower (classifier missing, ...), or None.
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._queue: collections.deque[str] = collections.deque()
        self._end = self._busy = self._closed = False
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- classifier

    @property
    def classifier(self) -> Any:
        """The classifier; loads (or reloads, after a settings change) in the calling thread. Raises what
        :class:`~raven_avatar.engine.emotion_text.EmotionClassifier` raises; within 10 s of a failure, the same
        error again without retrying (streamed chunks do not each retry a download)."""
        with self._load_lock:
            if self._given:
                return self._classifier
            settings = self.target.settings
            wanted = (settings["emotion_model"], settings["emotion_device"], settings["emotion_dtype"])
            failed = self._failed
            if failed is not None and failed[0] == wanted and time.monotonic() - failed[2] < _RETRY_AFTER:
                raise failed[1]
            if self._built_for != wanted:
                try:
                    model, device, dtype = wanted
                    self._classifier = et.EmotionClassifier(model, device, dtype=getattr(torch, dtype))
                except Exception as err:
                    self._failed = (wanted, err, time.monotonic())
                    raise
                self._built_for, self._failed = wanted, None
                if self._classifier.notice:
                    log.warning("emotion classifier: %s", self._classifier.notice)
            return self._classifier

    @classifier.setter
    def classifier(self, classifier: Any) -> None:
        with self._load_lock:
            self._classifier, self._given, self._failed = classifier, classifier is not None, None

    def classify(self, text: str) -> dict[str, float]:
        """Every label's score (the classifier's labels), with the settings' sentence context and recency."""
        s = self.target.settings
        return self.classifier.classify(text, last=s["emotion_context_sentences"], recency=s["emotion_recency"])

    def scores(self, text: str) -> dict[str, float]:
        """Scores of the avatar's emotion templates (labels mapped through the label table), best first."""
        table = et.label_table(self.target.settings["emotion_label_map"])
        scores, dropped = et.to_templates(self.classify(text), table, set(self.target.emotions))
        new = sorted(set(dropped) - self._warned)
        if new:
            self._warned.update(new)
            log.warning("classifier labels without an emotion template (ignored; map them with the "
                        "emotion_label_map setting): %s", ", ".join(new))  # fmt: skip
        return scores

    # ------------------------------------------------------------------------------------------------- actions

    def set_from_text(self, text: str) -> tuple[str, float]:
        """Classify ``text`` now (in the calling thread) and show its emotion (``neutral`` below the threshold):
        returns ``(emotion, its score)``. No hold time or margin: an explicit request; the follower then holds it."""
        scores = self.scores(text)
        self.last_scores = scores
        name, _ = choose(scores, self.target.settings["emotion_neutral_threshold"])
        self.target.set_emotion(name)
        with self._step_lock:
            self.follower.note(name)
        return name, scores.get(name, 0.0)

    def follow(self, chunk: str, *, done: bool = False) -> None:
        """Queue a chunk of streamed text (``done``: the text is complete); returns at once. A background thread
        classifies and changes the emotion with the follower's hysteresis; errors go to :attr:`last_error`."""
        with self._cond:
            if chunk:
                self._queue.append(chunk)
            self._end = self._end or done
            self._closed = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="emotion-follower", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued chunk was handled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._queue or self._end or self._busy), timeout)

    def close(self) -> None:
        """Stop the background thread (queued text is dropped); :meth:`follow` starts it again."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._end = False
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _idle_wait(self) -> float | None:
        due = self.follower.next_due()
        return None if due is None else min(1.0, max(0.005, due - self.follower.clock()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._queue or self._end):
                    timeout = self._idle_wait()
                    if not self._cond.wait(timeout) and timeout is not None:
                        break  # something is due
                if self._closed:
                    return
                text, end = "".join(self._queue), self._end
                self._queue.clear()
                self._end, self._busy = False, True
            try:
                self._step(text, end)
            except Exception as err:  # the thread must survive: a missing model, a bad setting, ...
                if str(err) != self.last_error:
                    log.error("emotion from text: %s", err)
                self.last_error = str(err)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _step(self, text: str, end: bool) -> None:
        f = self.follower
        with self._step_lock:
            f.params = FollowParams.from_settings(self.target.settings)
            f.note(self.target.emotion)
            try:
                if text:
                    f.feed(text)
                if end:
                    f.end()
                else:
                    f.poll()
            finally:
                if end:
                    f.reset()  # also when classifying failed: the next text starts afresh
        self.last_error = None
