"""What keeps a run folder honest while a process works in it: a lock per folder, and
SIGTERM turned into a recorded, resumable ``interrupted`` run and exit status 143.

SIGTERM (what SLURM and most schedulers send before SIGKILL) is handled in two places:

- during ``Trainer.fit``/``test`` Lightning's own handler is in charge: it composes ours
  with its own (ours then only notes the signal) and stops the loop at the next batch
  boundary by raising its ``SIGTERMException``;
- anywhere else (data preparation, between jobs, aggregation) ours raises ``Interrupted``
  at once.

``initlab.pipeline.run`` records either as status ``interrupted`` in ``summary.json``
and raises ``Interrupted`` again; train.py turns it into exit status 143 (128 + SIGTERM)
after a sweep has aggregated what finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 128 + signal.SIGTERM
LOCK_FILE = ".lock"


class Interrupted(BaseException):
    """The process got SIGTERM. A ``BaseException``: nothing on the way (a job's
    ``except Exception``, Hydra's job runner and callbacks) may record it as a failure.
    ``summary``: the interrupted run's summary, once it is written; ``summaries``: those
    of a vectorized job's members, in order, once written."""

    def __init__(self, signum: int = signal.SIGTERM, summary: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(f"interrupted by signal {signum} ({signal.Signals(signum).name})")
        self.signum = signum
        self.summary = summary
        self.summaries: list[dict[str, Any]] | None = None


class _TermHandler:
    """Our SIGTERM handler. Called by Python directly (no Trainer running) it raises
    ``Interrupted``; called from Lightning's handler (which keeps the one it found and
    calls it after its own) it only notes the signal: Lightning stops at a safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if signal.getsignal(signal.SIGTERM) is self:
            raise Interrupted(signum)


_HANDLER = _TermHandler()


def install_sigterm_handler() -> None:
    """Handle SIGTERM as described above (main thread only; a no-op elsewhere)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _HANDLER)


def received() -> int | None:
    """The signal number if this process got SIGTERM since ``install_sigterm_handler``."""
    return _HANDLER.signum


def raise_if_interrupted() -> None:
    """Stop here if SIGTERM arrived while Lightning was in charge and nothing raised
    (e.g. in the last batch of a fit): the process must still end."""
    if _HANDLER.signum is not None:
        raise Interrupted(_HANDLER.signum)


def interruption(exc: BaseException) -> Interrupted | None:
    """``exc`` as an ``Interrupted`` if it is one (ours, or Lightning's
    ``SIGTERMException``), else None."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, SIGTERMException):
        return Interrupted(_HANDLER.signum or signal.SIGTERM)
    return None


def record_interruption(summary: dict[str, Any], exc: Interrupted) -> None:
    """Mark a run as interrupted (resumable: a rerun on its folder runs it again)."""
    exc.summary = summary
    summary.update(status="interrupted", error_type="Interrupted",
                   error=f"{exc}; run the same command again to continue it")


@contextlib.contextmanager
def exit_status_on_interrupt() -> Iterator[None]:
    """Around a whole command: SIGTERM ends it with status 143, not 0 or a traceback."""
    install_sigterm_handler()
    try:
        yield
    except Interrupted as exc:
        sys.stdout.flush()
        sys.exit(128 + exc.signum)


class RunLock:
    """An exclusive lock on a run folder (``flock`` on ``<folder>/.lock``), so that two
    commands on the same folder do not both train it. The OS releases it when the process
    ends, however it ends (SIGKILL included); the file stays and holds the last owner's
    pid and host. On a network file system ``flock`` works where the system maps it to
    the NFS/Lustre lock service (Linux NFSv4 does)."""

    def __init__(self, folder: str | Path, fd: int) -> None:
        self.folder = Path(folder)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | Path) -> RunLock | str:
        """The held lock, or (not waiting) a description of who holds it."""
        path = Path(folder) / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 200).decode(errors="replace").strip()
            finally:
                os.close(fd)
            return holder or "another process"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return cls(folder, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
