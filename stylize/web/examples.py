"""The example images shipped in ``stylize/examples`` (credits in ``CREDITS.md`` there).

Clients address them by name; a name is only ever looked up in :data:`EXAMPLES`, never joined
to a path, so no client string reaches the file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Example:
    name: str  # what the client sends
    kind: str  # "content" or "style"
    title: str
    credit: str
    file: str  # file name inside EXAMPLES_DIR

    @property
    def path(self) -> Path:
        return EXAMPLES_DIR / self.file


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example("eiffel_tower", "content", "Eiffel Tower", "Pexels photo 338515, CC0", "eiffel_tower.jpg"),
    Example("canal_houses", "content", "Canal houses", "Photo by Seondol Son, Unsplash", "canal_houses.jpg"),
    Example("astronaut", "content", "Astronaut", "NASA, public domain", "astronaut.jpg"),
    Example("starry_night", "style", "The Starry Night", "Vincent van Gogh, 1889", "starry_night.jpg"),
    Example("great_wave", "style", "The Great Wave", "Katsushika Hokusai, c. 1831", "great_wave.jpg"),
    Example("composition_vii", "style", "Composition VII", "Wassily Kandinsky, 1913", "composition_vii.jpg"),
    Example("the_scream", "style", "The Scream", "Edvard Munch, 1893", "the_scream.jpg"),
)}


def available_examples() -> list[Example]:
    """The examples whose files are present (an installation may leave them out)."""
    return [e for e in EXAMPLES.values() if e.path.is_file()]
