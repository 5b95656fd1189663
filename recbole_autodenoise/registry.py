"""A small name -> class registry (in the spirit of spaCy's ``catalogue``), and the property files
that packages imported on demand add to the plugin's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Generic, Iterable, TypeVar

import yaml

T = TypeVar("T")

# how to get what ``recbole_autodenoise.experimental`` registers, in every message that names it
EXPERIMENTAL_OPT_IN = (
    "set experimental: true (command line: --experimental=true; Python: "
    "import recbole_autodenoise.experimental)"
)

# recbole_autodenoise.experimental's keys and defaults (properties/experimental.yaml)
EXPERIMENTAL_PROPERTY_FILE = Path(__file__).resolve().parent / "properties" / "experimental.yaml"

# property files of packages imported on demand (``recbole_autodenoise.experimental``): their keys
# join the known keys and their defaults load after overall.yaml (``config.property_files``)
EXTRA_PROPERTY_FILES: list[Path] = []


def experimental_defaults() -> dict[str, Any]:
    """The keys of ``EXPERIMENTAL_PROPERTY_FILE`` with their default values."""
    with open(EXPERIMENTAL_PROPERTY_FILE, encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle) or {})


def experimental_keys() -> frozenset[str]:
    """The keys of ``EXPERIMENTAL_PROPERTY_FILE``."""
    return frozenset(experimental_defaults())


def add_property_file(path: Path) -> None:
    """Load ``path``'s keys and defaults with the plugin's own from now on (once)."""
    if path not in EXTRA_PROPERTY_FILES:
        EXTRA_PROPERTY_FILES.append(path)


class Registry(Generic[T]):
    """Maps names to classes; ``get`` of an unknown name lists the available ones, and of an
    ``experimental`` name not registered yet says how to register it. ``names`` are sorted, or in
    the order of registration with ``sort=False``."""

    def __init__(self, kind: str, experimental: Iterable[str] = (), sort: bool = True) -> None:
        self.kind = kind
        self.experimental = tuple(experimental)
        self.sort = sort
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def register_named(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class under ``name`` and set its ``name`` attribute."""

        def decorator(cls: T) -> T:
            cls.name = name
            return self.register(name)(cls)

        return decorator

    def extend(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``name`` selects the class from now on, a subclass of the one
        registered under it that adds options (a package imported on demand)."""

        def decorator(cls: T) -> T:
            base = self.get(name)
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(
                    f"{self.kind} '{name}' can only be extended by a subclass of {base!r}"
                )
            cls.name = name
            self._entries[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: object) -> str:
        """Why ``name`` is not available: experimental and not imported, or unknown."""
        if isinstance(name, str) and name in self.experimental:
            return f"{self.kind} {name!r} is experimental: {EXPERIMENTAL_OPT_IN}"
        return f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries) if self.sort else list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
