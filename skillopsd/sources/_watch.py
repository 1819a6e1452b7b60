"""watchdog (inotify) events as hints: a path worth a look, never a fact in itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from ._registry import Root


class _Handler(FileSystemEventHandler):
    def __init__(self, hint: Callable[[Path], None]) -> None:
        self._hint = hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "deleted"):
            return
        raw = getattr(event, "dest_path", "") or event.src_path
        path = Path(os.fsdecode(raw))  # a name that is not UTF-8 must not kill the thread
        # ``.json``: documents rewritten in place (Gemini CLI's legacy sessions).
        if event.is_directory or path.suffix in (".jsonl", ".json"):
            self._hint(path)


class _FilesHandler(FileSystemEventHandler):
    """Hints for a few named files (managed skills' live SKILL.md), whatever their suffix."""

    def __init__(self, files: frozenset[Path], hint: Callable[[Path], None]) -> None:
        self._files = files
        self._hint = hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        # An editor that saves by renaming a temporary file over it shows up as dest_path.
        for raw in (getattr(event, "dest_path", ""), event.src_path):
            if raw:
                path = Path(os.fsdecode(raw))
                if path in self._files:
                    self._hint(path)


class Watcher:
    """Watches every root that exists (recursively), and the nearest parent of one that does not."""

    def __init__(self, roots: Sequence[Root], hint: Callable[[Path], None]) -> None:
        self._roots = [r.path for r in roots]
        self._observer = Observer()
        self._handler = _Handler(hint)
        self._watches: dict[tuple[Path, bool], ObservedWatch] = {}
        self._hint = hint
        self._files: frozenset[Path] = frozenset()
        self._file_watches: dict[Path, ObservedWatch] = {}

    def start(self) -> None:
        self.refresh()
        self._observer.start()

    def refresh(self) -> None:
        """Watch roots that have appeared since the last call."""
        wanted: set[tuple[Path, bool]] = set()
        for root in self._roots:
            if root.is_dir():
                wanted.add((root, True))
            else:
                parent = root.parent
                while not parent.is_dir() and parent != parent.parent:
                    parent = parent.parent
                wanted.add((parent, False))
        for key in set(self._watches) - wanted:
            self._observer.unschedule(self._watches.pop(key))
        for key in wanted - set(self._watches):
            path, recursive = key
            try:
                self._watches[key] = self._observer.schedule(
                    self._handler, str(path), recursive=recursive
                )
            except OSError:
                continue  # vanished or unwatchable; the periodic rescan still covers it

    def watch_files(self, files: frozenset[Path]) -> None:
        """Hint changes of exactly these files (a watch on each one's folder)."""
        if files == self._files:
            return
        self._files = files
        for watch in self._file_watches.values():
            self._observer.unschedule(watch)
        self._file_watches = {}
        handler = _FilesHandler(files, self._hint)
        for folder in sorted({f.parent for f in files}):
            try:
                self._file_watches[folder] = self._observer.schedule(
                    handler, str(folder), recursive=False
                )
            except OSError:
                continue  # a folder that is gone: the rescan's sync still reads the file

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
