"""Where skillops keeps its database by default."""

from __future__ import annotations

import os
from pathlib import Path

DB_ENV = "SKILLOPS_DB"
# A team server to read instead of this machine's log (``skillopsctl --team``).
TEAM_ENV = "SKILLOPS_TEAM_URL"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/skillops/skillops.db``, else ``~/.local/share/skillops/skillops.db``."""
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "skillops" / "skillops.db"
