"""Stopping a run cleanly on SIGTERM or SIGINT, with checkpoints that are never half-written.

The first SIGTERM (``docker stop``, systemd, a cluster scheduler) or SIGINT (Ctrl-C) lets the
current step finish, writes ``last.ckpt`` atomically and ends the run with
:class:`TrainingInterrupted`. A second signal exits at once, removing any checkpoint still being
written (the previous one stays intact). SLURM's requeue signal (SIGUSR1) is left to Lightning.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

# Checkpoint files being written right now (removed by a second signal before exiting).
_PARTIAL: set[Path] = set()


class TrainingInterrupted(Exception):
    """The run was stopped by a signal after a resumable checkpoint was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after step {step}; resumable checkpoint: {checkpoint}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place.

    Lightning's own writer goes through a temporary file in the system temp folder and
    moves it, which copies (and can be cut short) when that folder is another file system.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        _PARTIAL.add(tmp)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            _PARTIAL.discard(tmp)
            tmp.unlink(missing_ok=True)


class GracefulStop(L.Callback):
    """Keeps ``<checkpoint_dir>/last.ckpt`` resumable at the end of a run and on a signal.

    On the first SIGTERM/SIGINT the current step finishes, ``last.ckpt`` is written and
    :class:`TrainingInterrupted` leaves ``trainer.fit``; a second signal exits the process at
    once with status 128 + signal number. A run that reaches ``max_steps`` also writes
    ``last.ckpt`` (training reads one endless stream, so there is no epoch end to save at).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, checkpoint_dir: str | Path):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None:  # second signal: leave nothing half-written, exit now
            for path in list(_PARTIAL):
                path.unlink(missing_ok=True)
            os.write(2, f"\nsecond {signal.Signals(signum).name}: exiting now\n".encode())
            os._exit(128 + signum)
        self.requested = signum
        os.write(2, f"\n{signal.Signals(signum).name}: finishing this step, then saving a checkpoint\n".encode())

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in self.SIGNALS:  # replaces Lightning's SIGTERM handler, installed just before
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, trainer, pl_module) -> None:
        # weights_only=False: the whole training state (optimiser, loops), saved to resume from; said
        # aloud so Lightning does not print "`weights_only` was not set" after every run.
        trainer.save_checkpoint(self.checkpoint_dir / "last.ckpt", weights_only=False)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.requested is None:
            return
        path = self.checkpoint_dir / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        raise TrainingInterrupted(self.requested, trainer.global_step, path)
