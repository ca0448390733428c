"""Optional tones through a speaker (pygame.mixer), alongside the buzzer.

Without an audio device the kiosk logs one warning and stays silent: sound is a
nicety, never a reason to stop scanning.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

if TYPE_CHECKING:
    import pygame

log = logging.getLogger(__name__)

Tune = Literal["pass", "fail", "hint"]
# (frequency in Hz, seconds); a frequency of 0 is a rest.
TUNES: dict[Tune, tuple[tuple[float, float], ...]] = {
    "pass": ((880.0, 0.12), (1320.0, 0.10)),
    "fail": ((330.0, 0.10), (0.0, 0.08)) * 2 + ((330.0, 0.10),),
    "hint": ((660.0, 0.06),),
}
FADE_S = 0.005  # ramps at each edge keep the speaker from clicking


def tone(frequency: float, seconds: float, rate: int, volume: float) -> np.ndarray:
    """One sine tone (or silence for frequency 0) as int16 samples, with short fades."""
    t = np.arange(round(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * frequency * t) if frequency > 0 else np.zeros_like(t)
    ramp = np.clip(np.minimum(t, seconds - t) / FADE_S, 0.0, 1.0)
    return (wave * ramp * volume * 32767).astype(np.int16)


class Sound:
    """Plays the pass, fail and hint tunes; does nothing when disabled or without audio."""

    def __init__(self, enabled: bool = True, *, volume: float = 0.6, rate: int = 22050) -> None:
        self._tunes: dict[Tune, pygame.mixer.Sound] = {}
        self._mixer: ModuleType | None = None  # pygame.mixer, once open
        self._closed = False
        if enabled:
            self._open(volume, rate)

    @property
    def available(self) -> bool:
        """Whether tunes will actually play."""
        return bool(self._tunes)

    def _open(self, volume: float, rate: int) -> None:
        # pygame only once sound is wanted: a kiosk without a speaker runs without it.
        # It greets on stdout at import unless told not to; the daemon's stdout is a log.
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        try:
            pygame.mixer.init(frequency=rate, size=-16, channels=1)
        except pygame.error as e:
            log.warning("no audio device (%s): sound is off, the buzzer and screen still work", e)
            return
        rate, _, channels = pygame.mixer.get_init()
        for name, notes in TUNES.items():
            samples = np.concatenate([tone(f, s, rate, volume) for f, s in notes])
            # The mixer may open with more channels than asked; give each one the same samples.
            shaped = samples if channels == 1 else np.repeat(samples[:, None], channels, axis=1)
            self._tunes[name] = pygame.sndarray.make_sound(np.ascontiguousarray(shaped))
        self._mixer = pygame.mixer

    def tune(self, name: Tune) -> pygame.mixer.Sound | None:
        """The prepared tune, or None without audio."""
        return self._tunes.get(name)

    def play(self, name: Tune) -> bool:
        """Start the tune in the background, cutting any tune still playing; False if silent."""
        sound = self._tunes.get(name)
        if sound is None:
            return False
        assert self._mixer is not None  # tunes exist only once the mixer opened
        self._mixer.stop()
        sound.play()
        return True

    def close(self) -> None:
        """Stop and release the audio device (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._mixer is not None:
            self._mixer.stop()
            self._tunes.clear()
            self._mixer.quit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
