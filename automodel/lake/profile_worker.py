"""Profiling lake tables in worker processes, for index builds of many tables.

Each worker is ``python -m automodel.lake.profile_worker``: it reads ``(lake folder, [(position, entry), ...])``
pickled on stdin and writes one pickled ``(position, profile, why)`` per table to stdout as it goes
(``profile`` None and ``why`` the reason when the file could not be read as a table). A worker is a
fresh interpreter started by module name, so it never re-runs the caller's script (which the
``spawn`` start method of multiprocessing does for a script without a ``__main__`` guard) and
never inherits the caller's threads or open catalog (as ``fork`` would).
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

_DONE = object()


def profiles(lake_dir: Path, entries: list[dict], workers: int) -> Iterator[tuple[int, dict | None, str | None]]:
    """``(position in entries, profile, why)`` for every entry, in the order workers finish them."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    shares = [[(i, entry) for i, entry in enumerate(entries) if i % workers == w] for w in range(workers)]
    results: queue.Queue = queue.Queue()
    processes = []
    try:
        for share in shares:
            process = subprocess.Popen([sys.executable, "-m", "automodel.lake.profile_worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env)
            processes.append(process)
            threading.Thread(target=_read, args=(process, results), daemon=True).start()
            pickle.dump((str(lake_dir), share), process.stdin)
            process.stdin.close()
        finished = 0
        while finished < len(processes):
            item = results.get()
            if item is _DONE:
                finished += 1
                continue
            if item[0] == "error":
                raise RuntimeError(f"profiling a lake table failed in a worker process:\n{item[1]}")
            yield item
        for process in processes:
            if process.wait() != 0:
                raise RuntimeError(f"a profiling worker process exited with status {process.returncode}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _read(process: subprocess.Popen, results: queue.Queue) -> None:
    try:
        while True:
            try:
                results.put(pickle.load(process.stdout))
            except EOFError:
                break
    finally:
        results.put(_DONE)


def main() -> None:
    from automodel.lake.profiling import profile_file

    lake_dir, share = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but results on the pipe
    for position, entry in share:
        try:
            profile, why = profile_file(Path(lake_dir), entry)
        except Exception:  # noqa: BLE001 - any failure reaches the build with its traceback
            pickle.dump(("error", f"{entry.get('file')}: {traceback.format_exc()}"), out)
            out.flush()
            raise SystemExit(1) from None
        pickle.dump((position, profile, why), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    main()
