"""Holdouts: a deterministic share of each trigger's subjects left untreated.

A subject's bucket, 0 to 99, comes from SHA-256 of the trigger id, the
subject type and the subject id. It does not change between sweeps,
processes or Python versions (unlike hash(), which is salted per process),
and a renamed slug keeps the groups. A subject whose bucket is below the
trigger's holdout_percent is in the control group every time it fires.
"""

import hashlib

BUCKETS = 100


def holdout_bucket(trigger_id: int, subject_type: str, subject_id: int) -> int:
    """Return the subject's bucket for the trigger, from 0 to 99."""
    key = f"holdout:{trigger_id}:{subject_type}:{subject_id}".encode()
    digest = hashlib.sha256(key).digest()
    # 64 bits modulo 100 leaves a bias below 1e-17 per bucket.
    return int.from_bytes(digest[:8], "big") % BUCKETS
