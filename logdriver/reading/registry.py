"""The FIFOs this plugin is reading, persisted so a restarted plugin resumes them.

The daemon never re-sends StartLogging after a plugin crash, restart or
upgrade, and a container whose FIFO nobody reads freezes in its next write.
So every StartLogging is recorded here before it is answered, and removed
when its FIFO reaches EOF. The file is rewritten atomically (write a temporary,
rename it over): a plugin crash leaves either the old or the new set, never a
torn one, and mode 0600: Info holds the container's environment and secret
log-opts. There is deliberately no fsync: the registry has to survive the
plugin process, not the kernel (after a host crash the daemon starts every
container with a new FIFO anyway), and an fsync in StartLogging would make
``docker run`` wait for the journal to write out every dirty log page on the
host (measured at tens to hundreds of milliseconds under load).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from logdriver._files import write_private

log = logging.getLogger("logdriver.registry")


class FifoRegistry:
    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        try:
            with open(path, "rb") as handle:
                loaded = orjson.loads(handle.read())
            if isinstance(loaded, dict):
                self._entries = {str(k): v for k, v in loaded.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except orjson.JSONDecodeError:
            log.error("FIFO registry %s is corrupt; starting empty (unread FIFOs may block their containers)", path)

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._entries)

    def add(self, fifo: str, info: dict[str, Any]) -> None:
        self._entries[fifo] = info
        self._save()

    def remove(self, fifo: str) -> bool:
        """Forget ``fifo``; the file is rewritten by the next ``add`` or ``flush``.

        Returns whether a flush is now due. Deferred because a host whose containers
        exit together would otherwise rewrite the whole file once per container; a crash
        before the flush leaves an entry whose FIFO resume finds gone, or at EOF.
        """
        if self._entries.pop(fifo, None) is None:
            return False
        self._dirty = True
        return True

    def flush(self) -> None:
        if self._dirty:
            self._save()

    def _save(self) -> None:
        write_private(self.path, orjson.dumps(self._entries))
        self._dirty = False
