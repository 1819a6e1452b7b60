"""What a sync refusal means to a user when the log is a copied or restored database
(reviewer G22): kept apart from ``cli/sync.py`` so ``status`` can say it without loading the
team package."""

from __future__ import annotations

from pathlib import Path

# How the server words a log that is not the history it holds for the log's machine id (a
# copied or restored database file: same first event, so same id): team/sync.py._one_batch.
NOT_THIS_HISTORY = ("this log differs at position", "it is not the log that was synced")


def copied_log(refused: str, machine: str, db: Path) -> str:
    """``refused``, and when it is a copied or restored log's (reviewer G22), what happened
    in a user's terms and the way forward: the server keeps one history per machine, and a
    log's machine id is its first event's hash, so only a new log syncs as a new machine."""
    if not any(words in refused for words in NOT_THIS_HISTORY):
        return refused
    return (
        f"{refused}: this database is a copy or a restored backup of machine {machine[:8]}…'s"
        " log (the same first event, so the same machine id) that has since recorded other"
        " events, and the server keeps one history per machine. To sync this machine as a new"
        f" machine, start a new log: stop skillopsd if it runs here, move {db} aside (it stays"
        " readable: skillopsctl --db FILE …), run skillopsd --once (it captures this machine's"
        " transcripts into a new log, with a new machine id; a session both machines sent"
        " counts once), then sync again; labels, notes and skill decisions made only in the"
        " moved file stay in it"
    )
