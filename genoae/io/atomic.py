"""Atomic writes: a temp file in the target's folder, renamed over the target only on success."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give (mkstemp's temp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_interrupted = False


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came while a write was guarded by :func:`interrupt_guard`.

    Writers call it between blocks, so that an interrupt stops them promptly.
    """
    if _interrupted:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_guard():
    """Record Ctrl-C instead of raising it wherever it lands, and raise it at :func:`check_interrupt` or at the
    end of the block.

    h5py (and other C extensions) run Python callbacks, such as weakref finalisers, in which a KeyboardInterrupt is
    printed as "Exception ignored" and lost: the write then finished and exited 0 although the user pressed Ctrl-C.
    Only the main thread can own signal handlers; elsewhere the block runs unguarded.
    """
    import signal
    import threading

    global _interrupted
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def record(signum, frame):
        global _interrupted
        _interrupted = True

    _interrupted = False
    signal.signal(signal.SIGINT, record)
    try:
        yield
        check_interrupt()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        was_interrupted, _interrupted = _interrupted, False
    if was_interrupted:  # came after the last check (e.g. while an exception was already unwinding)
        raise KeyboardInterrupt


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path beside ``target``; rename it onto ``target`` when the block succeeds.

    On any exception, Ctrl-C included, the temporary file is removed, so a crash never leaves a half-written file
    under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode())
    try:
        with interrupt_guard():
            yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(target, mode: str = "w", **kwargs):
    """Open a temporary file beside ``target`` for writing; rename it onto ``target`` on success."""
    with atomic_path(target) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle


@contextlib.contextmanager
def atomic_group(targets):
    """Write several files that belong together (e.g. .bed/.bim/.fam): all renamed at the end, or none.

    Yields a list of temporary paths in the order of ``targets``.
    """
    targets = [Path(t) for t in targets]
    tmps = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            os.chmod(tmp, _default_mode())
            tmps.append(Path(tmp))
        yield tmps
        for tmp, target in zip(tmps, targets):
            os.replace(tmp, target)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


class OutputSet:
    """The files of one run under one prefix, written as a set: staged, then renamed together.

    Entering takes ``PREFIX.lock`` (created exclusively; it names the process) so that a second run into the same
    prefix is refused while the first runs; a lock left by a killed process on this machine is taken over.  Files
    are written into a hidden staging folder beside the outputs under their final names (so metadata that names a
    sibling file stays right) and moved into place only when the block succeeds; on any failure the staging folder
    and the lock are removed and no file of the prefix has changed.

    Use :meth:`path` for where to write a final path's file; :meth:`final` maps a staged path back.
    """

    def __init__(self, prefix):
        self.prefix = os.fspath(prefix)
        self.folder = Path(self.prefix).parent
        self.lock = Path(self.prefix + ".lock")
        self.staging: Path | None = None
        self.obsolete: list[Path] = []

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=f".{Path(self.prefix).name}.", suffix=".staging",
                                                 dir=self.folder))
        except BaseException:
            self._release_lock()
            raise
        return self

    def path(self, target) -> Path:
        """Where to write the file that will become ``target`` (which must lie in the prefix's folder)."""
        target = Path(target)
        if os.path.realpath(target.parent) != os.path.realpath(self.folder):
            raise ValueError(f"{target} is not in the output folder {self.folder}")
        return self.staging / target.name

    def final(self, staged) -> Path:
        """The final path of a staged file."""
        return self.folder / Path(staged).name if Path(staged).parent == self.staging else Path(staged)

    def remove_on_commit(self, paths) -> None:
        """Files of an earlier run under this prefix that the new set makes stale: removed when it is moved in."""
        self.obsolete.extend(Path(p) for p in paths)

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                for staged in sorted(self.staging.iterdir()):
                    os.replace(staged, self.folder / staged.name)
                for stale in self.obsolete:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(stale)
        finally:
            import shutil

            shutil.rmtree(self.staging, ignore_errors=True)
            self._release_lock()
        return False

    # ------------------------------------------------------------------ the lock
    def _take_lock(self):
        import socket
        import time

        me = f"{socket.gethostname()} {os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}"
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _default_mode())
            except FileExistsError:
                if self._lock_is_stale():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.lock)
                    continue
                from genoae.errors import UsageError

                holder = self._lock_holder() or "another process"
                raise UsageError(f"{self.prefix}: another genoae run is writing this prefix ({holder}; "
                                 f"{self.lock}); wait for it to finish or choose another -o (if no such run is "
                                 f"alive, delete {self.lock.name})") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(me + "\n")
            return

    def _lock_holder(self) -> str:
        try:
            host, pid, *when = self.lock.read_text().split()
        except (OSError, ValueError):
            return ""
        return f"process {pid} on {host} since {' '.join(when)}"

    def _lock_is_stale(self) -> bool:
        """A lock whose process is gone on this machine (killed before it could remove it)."""
        import socket

        try:
            host, pid, *_ = self.lock.read_text().split()
            pid = int(pid)
        except (OSError, ValueError):
            return False
        if host != socket.gethostname():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _release_lock(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock)
