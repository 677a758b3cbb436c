"""Which process runs a run, and whether it is still alive.

A process is named by its host, pid and start time. The start time is what keeps a reused pid from
passing for the process that died: the kernel hands pids out again, but a new process with the same
pid started later than the one recorded.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import psutil

# Start times of one process read twice agree to the clock tick (10 ms); a reused pid starts later than that.
SAME_START_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    started: float  # seconds since the epoch

    def encode(self) -> str:
        return f"{self.host}|{self.pid}|{self.started:.2f}"

    @classmethod
    def decode(cls, text: str | None) -> ProcessIdentity | None:
        """The identity ``encode`` wrote, or None for anything else (an old record, a hand-edited tag)."""
        try:
            host, pid, started = (text or "").rsplit("|", 2)
            return cls(host, int(pid), float(started))
        except ValueError:
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def this_host() -> str:
    return socket.gethostname()


def start_time(pid: int) -> float | None:
    """When process ``pid`` started, or None when there is no such process (a zombie counts as gone)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def current_process() -> ProcessIdentity:
    return ProcessIdentity(this_host(), psutil.Process().pid, psutil.Process().create_time())


def is_alive(identity: ProcessIdentity) -> bool | None:
    """True or False for a process on this host; None when it runs elsewhere and cannot be judged from here."""
    if identity.host != this_host():
        return None
    started = start_time(identity.pid)
    return started is not None and abs(started - identity.started) <= SAME_START_TOLERANCE_S


def started_no_later_than(pid: int, moment: float) -> bool:
    """Whether ``pid`` on this host is alive and started no later than ``moment`` (seconds since the epoch).

    For a process known only by a pid and a time it was seen alive (Dagster's "Started process for
    run" event): a process with that pid that started after the moment reuses the pid.
    """
    started = start_time(pid)
    return started is not None and started <= moment + SAME_START_TOLERANCE_S
