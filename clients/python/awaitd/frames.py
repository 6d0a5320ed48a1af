"""The daemon's framed bodies (docs/QUEUES.md, "Framed bodies" and "Batch
ack"): what put_many() sends, what get_many() reads, what ack_many() sends."""

from typing import Iterable, List, Tuple

FRAMES_CT = "application/x-awaitd-frames"

RESERVE_MAX = 100  # the daemon's bound on a reserve's count=
ACKS_MAX = 1000    # ... and on the lines of one batch ack


def encode_puts(payloads: Iterable[bytes]) -> bytes:
    """``<len>\\n<payload>\\n`` per job."""
    parts: List[bytes] = []
    for p in payloads:
        parts += [b"%d\n" % len(p), p, b"\n"]
    return b"".join(parts)


def decode_reserved(body: bytes) -> List[Tuple[int, int, int, float, bytes]]:
    """The jobs of a framed reserve answer: ``<id> <attempt> <priority>
    <lease_deadline> <len>\\n<payload>\\n`` each, as (id, attempt,
    priority, lease_deadline, payload). A malformed body raises ValueError
    (the daemon never sends one)."""
    jobs = []
    pos = 0
    while pos < len(body):
        nl = body.index(b"\n", pos)
        fields = body[pos:nl].split(b" ")
        if len(fields) != 5:
            raise ValueError("bad frame header %r" % body[pos:nl])
        size = int(fields[4])
        start, end = nl + 1, nl + 1 + size
        if body[end:end + 1] != b"\n":
            raise ValueError("frame of %d bytes cut short" % size)
        jobs.append((int(fields[0]), int(fields[1]), int(fields[2]), float(fields[3]),
                     body[start:end]))
        pos = end + 1
    return jobs


def encode_acks(ids_attempts: Iterable[Tuple[int, int]]) -> bytes:
    """``<id> <attempt>\\n`` per job."""
    return b"".join(b"%d %d\n" % (i, a) for i, a in ids_attempts)
