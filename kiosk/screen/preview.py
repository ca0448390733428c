"""The optional live camera picture in a corner of the screen, with a found code outlined."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pygame

from kiosk.screen.painting import ONLINE, WHITE


class Preview:
    """A small live camera picture in the corner, with a found code outlined."""

    def __init__(self, screen_size: tuple[int, int], *, fraction: float = 0.25) -> None:
        self._width = max(40, round(screen_size[0] * fraction))
        self._place = (screen_size[0] - self._width - 8, 8)
        self._image: pygame.Surface | None = None
        self.fresh = False

    def update(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None) -> None:
        """Keep a scaled-down copy of `frame` (gray uint8, H x W) with `outline` drawn on it."""
        step = max(1, frame.shape[1] // self._width)  # plain decimation: cheap on the main loop
        small = np.ascontiguousarray(frame[::step, ::step])
        rgb = np.repeat(small[:, :, None], 3, axis=2)
        image = pygame.image.frombuffer(rgb.tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB").copy()
        if outline:
            corners = [(x / step, y / step) for x, y in outline]
            pygame.draw.polygon(image, ONLINE, corners, 3)
        self._image = image
        self.fresh = True

    def draw(self, surface: pygame.Surface) -> None:
        """Blit the latest picture, framed."""
        if self._image is None:
            return
        surface.blit(self._image, self._place)
        pygame.draw.rect(surface, WHITE, self._image.get_rect(topleft=self._place), 2)
        self.fresh = False
