"""How a sweep's job list becomes vectorized jobs (pure functions, no torch).

The basic sweeper expands ``init=xavier,he seed=0,1 activation=relu,tanh`` into one
override list per run. Runs whose lists differ only in *member keys* (``init``,
``init.*``, ``seed`` and ``optimizer.lr`` by default) share the architecture, the data and
the training recipe but for the lr, so they are trained together: each such group
becomes ONE job whose overrides are the shared ones
plus ``++vectorize.members=[{num: <run number>, overrides: [...]}, ...]`` and the keys'
order in a run's list, ``++vectorize.order=[...]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# keys the members of a vectorized job may differ in: the initial weights, the batch order
# and the learning rate (vectorized.optim gives each member its own)
DEFAULT_MEMBER_KEYS = ("init", "seed", "optimizer.lr")
# The job-level key train.py looks for; members are listed under ``vectorize.members``.
VECTORIZE_KEY = "vectorize"
# Vectorized jobs keep their own Hydra folder (.hydra/, the job log) out of the sweep's
# run folders: hidden folders are not runs for the aggregation.
JOB_DIR = ".vectorized"


def override_key(override: str) -> str:
    """``+init.std=3`` -> ``init.std``; ``init@x=he`` -> ``init``; ``~seed`` -> ``seed``."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


def is_member_key(key: str, member_keys: Iterable[str] = DEFAULT_MEMBER_KEYS) -> bool:
    """True for a key a vectorized job may vary between its members."""
    return any(key == m or key.startswith((f"{m}.", f"{m}/")) for m in member_keys)


def checked_member_keys(member_keys: Iterable[str] | None) -> tuple[str, ...]:
    """``hydra.sweeper.member_keys`` (default ``DEFAULT_MEMBER_KEYS``), each one a key
    stacked members may differ in (their initial weights, batch order and lr); raises
    ValueError naming one that is not."""
    keys = tuple(member_keys or DEFAULT_MEMBER_KEYS)
    for key in keys:
        if not is_member_key(str(key), DEFAULT_MEMBER_KEYS):
            raise ValueError(
                f"hydra.sweeper.member_keys: {key!r} is not allowed; members of a "
                f"vectorized job can differ only in init, init.*, seed and optimizer.lr")
    return keys


@dataclass
class VectorizedJob:
    """One launched job: the overrides all its members share and each member's own."""

    shared: list[str]
    members: list[tuple[int, list[str]]] = field(default_factory=list)  # (run number, overrides)
    # the keys of a run's override list in its order (the same for every run of a sweep):
    # a member's list is rebuilt in it, so its run name is the ordinary run's
    order: list[str] = field(default_factory=list)

    def overrides(self, index: int) -> list[str]:
        """The job's override list (``index`` names its hidden job folder)."""
        order = ",".join(quote(k) for k in self.order)
        return [
            *self.shared,
            f"{VECTORIZE_KEY_OVERRIDE}={encode_members(self.members)}",
            f"++{VECTORIZE_KEY}.order=[{order}]",
            f"hydra.sweep.subdir={quote(f'{JOB_DIR}/{index}')}",
        ]


VECTORIZE_KEY_OVERRIDE = f"++{VECTORIZE_KEY}.members"


def in_order(overrides: Sequence[str], order: Sequence[str] | None) -> list[str]:
    """``overrides`` sorted by their keys' places in ``order`` (a stable sort; keys not in
    it go last): a member's shared and own overrides back in the run's own order."""
    if not order:
        return list(overrides)
    place = {key: i for i, key in enumerate(order)}
    return sorted(overrides, key=lambda o: place.get(override_key(o), len(place)))


def group_jobs(
    jobs: Sequence[Sequence[str]],
    member_keys: Iterable[str] = DEFAULT_MEMBER_KEYS,
    max_members: int | None = None,
) -> list[VectorizedJob]:
    """Group expanded jobs (override lists in the basic sweeper's order) by everything
    except the member keys. Run numbers are the positions in ``jobs``, so member folders
    are numbered as the basic sweeper would number its jobs. Groups keep first-seen
    order; ``max_members`` splits larger groups into consecutive chunks."""
    if max_members is not None and (not isinstance(max_members, int) or max_members <= 0):
        raise ValueError(
            f"hydra.sweeper.max_members={max_members!r} must be null or an integer > 0")
    keys = tuple(member_keys)
    groups: dict[tuple[str, ...], VectorizedJob] = {}
    for num, job in enumerate(jobs):
        shared = [o for o in job if not is_member_key(override_key(o), keys)]
        own = [o for o in job if is_member_key(override_key(o), keys)]
        group = groups.setdefault(tuple(shared), VectorizedJob(
            shared=list(shared), order=[override_key(o) for o in job]))
        group.members.append((num, own))
    out: list[VectorizedJob] = []
    for group in groups.values():
        size = max_members or len(group.members)
        for i in range(0, len(group.members), size):
            out.append(VectorizedJob(group.shared, group.members[i : i + size], group.order))
    return out


def quote(text: str) -> str:
    """A Hydra override quoted string that parses back to ``text``. In Hydra's grammar a
    backslash escapes only before a quote or at the end of the string, so only those
    backslash runs are doubled."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def encode_members(members: Sequence[tuple[int, Sequence[str]]]) -> str:
    """``[{num:0,overrides:['init=he','seed=0']},...]`` in Hydra's override grammar."""
    items = []
    for num, overrides in members:
        quoted = ",".join(quote(o) for o in overrides)
        items.append(f"{{num:{int(num)},overrides:[{quoted}]}}")
    return "[" + ",".join(items) + "]"


def decode_members(value: object) -> list[tuple[int, list[str]]]:
    """The inverse of ``encode_members`` once Hydra has parsed it (a list of dicts)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    if not isinstance(value, list) or not value:
        raise ValueError(f"vectorize.members must be a non-empty list, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, dict) or "num" not in item:
            raise ValueError(f"vectorize.members: each item needs num and overrides, got {item!r}")
        out.append((int(item["num"]), [str(o) for o in item.get("overrides") or []]))
    return out


_PLAIN_SEED = re.compile(r"^seed=(-?\d+)$")


def split_seed(overrides: Sequence[str]) -> tuple[tuple[str, ...], int | None]:
    """(the overrides without a plain ``seed=<int>``, that int or None). Members that agree
    on the rest compose to the same config up to ``seed``, so one composition serves
    them all (composing costs about 0.1 s a run)."""
    rest, seed = [], None
    for o in overrides:
        m = _PLAIN_SEED.match(o)
        if m:
            seed = int(m.group(1))
        else:
            rest.append(o)
    return tuple(rest), seed

