"""Signed checkpoints of the audit chain, kept outside the database (issue 18).

The chain alone proves nothing against someone who can write the table: with the append-only
trigger disabled (the database's superuser can), a row can be rewritten and every later hash
recomputed, or the last rows deleted, and the chain verifies again. A checkpoint records the
chain's head at a moment (seq, hash, row count, time), signed with an HMAC of the service's
secret key, and is appended to a file the database cannot reach. Verification then checks the
chain against every checkpoint and names where they disagree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.audit import repository
from models import AuditEvent, utcnow


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    count: int
    time: str

    def signed(self, secret: str) -> dict:
        return {**asdict(self), "signature": _sign(secret, self)}


def _sign(secret: str, point: Checkpoint) -> str:
    message = f"{point.seq}:{point.hash}:{point.count}:{point.time}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def take_checkpoint(session: Session, path: Path, secret: str) -> Checkpoint | None:
    """Append the chain's current head to `path` (fsynced); None for an empty chain or when
    the head is the last checkpoint's already."""
    tail = repository.chain_tail(session)
    if tail is None:
        return None
    known = read_checkpoints(path, secret)[0]
    if known and known[-1].seq == tail.seq:
        return None
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    point = Checkpoint(tail.seq, tail.hash, count, utcnow().isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(point.signed(secret)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return point


def read_checkpoints(path: Path, secret: str) -> tuple[list[Checkpoint], list[int]]:
    """The checkpoints whose signature holds, and the number of each line that does not."""
    if not path.is_file():
        return [], []
    points, bad_lines = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            point = Checkpoint(row["seq"], row["hash"], row["count"], row["time"])
            valid = hmac.compare_digest(row["signature"], _sign(secret, point))
        except (ValueError, KeyError, TypeError):
            valid = False
        if valid:
            points.append(point)
        else:
            bad_lines.append(number)
    return points, bad_lines


def check_against(points: list[Checkpoint], hashes: dict[int, str], last_seq: int,
                  count: int) -> list[tuple[int, str, dict]]:  # fmt: skip
    """(seq, code, params) for every checkpoint the chain no longer agrees with (the codes'
    texts are in domain/messages.py)."""
    problems = []
    for point in points:
        if point.seq > last_seq:
            problems.append((point.seq, "chain_cut", {"time": point.time, "last": last_seq}))
        elif hashes.get(point.seq) != point.hash:
            problems.append((point.seq, "history_rewritten", {"time": point.time}))
        elif count < point.count:
            problems.append(
                (point.seq, "rows_deleted", {"time": point.time, "then": point.count, "now": count})
            )
    return problems
