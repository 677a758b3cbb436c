"""Crash recovery: runs whose process is SIGKILLed give back their pool slots and are marked failed with the reason,
in `sessions` and in Dagster, on the next command or sensor tick. Real processes, real kills, one real instance."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from automodel.layout import Layout
from automodel.liveness import ProcessIdentity, current_process, is_alive, started_no_later_than

AUTOMODEL = [sys.executable, "-m", "automodel_assets.cli"]
# Each stage of the run graph, in the order the in-process executor runs them.
STAGES = ["raw_dataset", "cleaned_frame", "column_metadata", "enriched_frame", "model", "predictions", "explanations", "summary",
          "dashboard", "actions"]


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(REPO / "datasets"), "HF_HUB_OFFLINE": "1",
            "AUTOMODEL_SEARCH_BUDGET_S": "600", "ENABLE_SEMANTIC_MERGE": "0", "MAX_REQUESTS_FREE": "1000", **extra}


_INSTANCES: dict[Path, dg.DagsterInstance] = {}


def _instance(home: Path) -> dg.DagsterInstance:
    from automodel_assets.runs import get_instance

    if home not in _INSTANCES:
        _INSTANCES[home] = get_instance(Layout.at(home))
    return _INSTANCES[home]


STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def _running_steps(home: Path, dagster_run_id: str) -> list[str]:
    """Steps of the run that started and have not finished, from its whole event log."""
    return StepWatch(home, dagster_run_id).running()


class StepWatch:
    """The steps of one run that started and have not finished, reading only the events logged since the last look.

    The kill loop looks every few milliseconds; rereading the whole log each time would take CPU from the run it watches."""

    def __init__(self, home: Path, dagster_run_id: str):
        self.home, self.run_id, self.cursor, self.started, self.finished = home, dagster_run_id, None, [], set()

    def running(self) -> list[str]:
        new = _instance(self.home).get_records_for_run(self.run_id, cursor=self.cursor, of_type=STEP_EVENTS)
        for record in new.records:
            entry = record.event_log_entry
            (self.started.append if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START else self.finished.add)(entry.step_key)
        self.cursor = new.cursor if new.records else self.cursor
        return [s for s in self.started if s not in self.finished]


def _run_of(home: Path, pid: int) -> dg.DagsterRun | None:
    if not (home / "dagster" / "history" / "runs.db").exists():
        return None
    for run in _instance(home).get_runs(limit=5):
        identity = ProcessIdentity.decode(run.tags.get("automodel/worker"))
        if identity and identity.pid == pid:
            return run
    return None


_FORK_SERVER = """
import json, os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children: a killed one leaves no zombie behind
import automodel_assets.cli, automodel_assets.definitions  # the expensive imports, once for every victim
# Imported by the validation check and the explanations stage when they first run (seconds each); GX quiet as that check has it.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
import great_expectations, great_expectations.expectations, shap
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os._exit(automodel_assets.cli.main(request["args"]))
    print(pid, flush=True)
"""


class Victims:
    """Starts `automodel` commands as forks of one process that has imported everything already.

    Each command is a real process of its own (its own pid and start time, its own Dagster and SQLite connections) that
    is killed with a real SIGKILL; forking spares each one the seconds of imports a fresh interpreter pays.
    """

    def __init__(self, env: dict, logs: Path):
        self.logs, self.paths = logs, {}
        logs.mkdir(parents=True, exist_ok=True)
        self.server = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)
        assert self.server.stdout.readline().strip() == "ready"

    def log(self, pid: int) -> str:
        path = self.paths.get(pid)
        return path.read_text(errors="replace")[-800:] if path and path.exists() else ""

    def start(self, args: list[str], env: dict) -> int:
        self.count = getattr(self, "count", 0) + 1
        log = self.logs / f"victim-{self.count}.log"
        self.server.stdin.write(json.dumps({"args": args, "env": env, "log": str(log)}) + "\n")
        self.server.stdin.flush()
        pid = int(self.server.stdout.readline())
        self.paths[pid] = log
        return pid

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_inside(home: Path, victims: Victims, args: list[str], stage: str, env: dict, attempts: int = 10) -> str:
    """Start `automodel ARGS` and SIGKILL it while `stage` runs; return the automodel run id.

    A short stage can end between the poll that saw it start and the kill, or before any poll saw it; the
    event log says where the kill landed, and a kill that missed is tried again with a new run (a missed
    run that was killed is one more dead run to recover; one that finished is simply done).
    """
    for _ in range(attempts):
        pid = victims.start(args, env)
        deadline = time.time() + 300
        run = watch = None
        while time.time() < deadline and _alive(pid):
            run = run or _run_of(home, pid)
            watch = watch or (StepWatch(home, run.run_id) if run is not None else None)
            if watch is not None and stage in watch.running():
                break
            time.sleep(0.005)
        if not _alive(pid):
            assert "error:" not in victims.log(pid), victims.log(pid)  # it finished before the stage was seen: try again
            continue
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.01)
        assert run is not None, victims.log(pid)
        if _running_steps(home, run.run_id) == [stage]:
            return run.tags["automodel/run_id"]
    pytest.fail(f"no kill landed inside stage {stage} in {attempts} attempts: {victims.log(pid)}")


def _slots_held(home: Path) -> int:
    storage = _instance(home).event_log_storage
    return sum(len(storage.get_concurrency_info(key).claimed_slots) for key in storage.get_concurrency_keys())


def _sessions(home: Path, env: dict) -> dict:
    done = subprocess.run([*AUTOMODEL, "sessions", "--limit", "100", "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return {row["run_id"]: row for row in json.loads(done.stdout)["sessions"]}


@pytest.fixture(scope="module")
def penguins_csv(tmp_path_factory) -> Path:
    import palmerpenguins

    path = tmp_path_factory.mktemp("data") / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(path, index=False)
    return path


def test_a_reused_pid_is_not_taken_for_the_dead_process():
    me = current_process()
    assert is_alive(me) is True
    assert is_alive(ProcessIdentity(me.host, me.pid, me.started - 60)) is False, "same pid, earlier start: the recorded process is gone"
    assert is_alive(ProcessIdentity("another-host", me.pid, me.started)) is None, "a process on another host is not judged from here"
    assert ProcessIdentity.decode(me.encode()) == ProcessIdentity(me.host, me.pid, round(me.started, 2))
    assert ProcessIdentity.decode("garbage") is None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen = time.time()
        assert started_no_later_than(child.pid, seen)
        assert not started_no_later_than(child.pid, seen - 120), "a process that started after it was last seen is another one"
    finally:
        child.kill()
        child.wait()
    assert not started_no_later_than(child.pid, time.time())


_FAKE_LAUNCHED_RUN = textwrap.dedent("""
    import os, sys, time
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from automodel.layout import Layout
    from automodel.sessions import RunManifest, SessionStore
    from automodel_assets.definitions import defs
    from automodel_assets.runs import get_instance

    run_id = sys.argv[1]
    layout = Layout.at(os.environ["AUTOMODEL_HOME"])
    instance = get_instance(layout)
    SessionStore(layout.sessions_db).create(RunManifest(run_id=run_id, source_uri="/nonexistent.csv", user_id="dana", file_name="x.csv"))
    instance.add_dynamic_partitions("run_id", [run_id])
    job = defs.resolve_job_def("automodel_run")
    run = instance.create_run_for_job(job_def=job, tags={"dagster/partition": run_id, "automodel/run_id": run_id})
    # What Dagster's run worker does when the daemon or the UI launches a run: it names its pid in an engine event.
    instance.report_engine_event(f"Started process for run (pid: {os.getpid()}).", run, EngineEventData.in_process(os.getpid()))
    instance.report_dagster_event(DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run.run_id)
    instance.event_log_storage.initialize_concurrency_limit_to_default("train")
    assert instance.event_log_storage.claim_concurrency_slot("train", run.run_id, "model").is_claimed
    SessionStore(layout.sessions_db).update(run_id, status="running")
    print("ready", flush=True)
    time.sleep(120)
""")


def test_the_sensor_fails_a_daemon_launched_run_whose_worker_died_and_frees_its_slot(home, tmp_path):
    """Runs launched by the daemon or the UI are known by Dagster's own pid event; a tick of dead_run_recovery finds the death."""
    from automodel_assets.definitions import build_resources
    from sensors.run_status import dead_run_recovery

    worker = subprocess.Popen([sys.executable, "-c", _FAKE_LAUNCHED_RUN, "drop-dead0001"], env=_env(home), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        instance = _instance(home)
        resources = {"settings": build_resources()["settings"]}
        tick = dead_run_recovery(dg.build_sensor_context(instance=instance, resources=resources))
        assert "every unfinished run has a live process" in tick.skip_message, "a live worker is left alone"
        assert _slots_held(home) == 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        tick = dead_run_recovery(dg.build_sensor_context(instance=instance, resources=resources))
        assert "recovered 1 dead runs" in tick.skip_message
    finally:
        if worker.poll() is None:
            worker.kill()
    run = instance.get_runs(filters=dg.RunsFilter(tags={"automodel/run_id": "drop-dead0001"}))[0]
    assert run.status == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    assert f"pid {worker.pid}" in failure.dagster_event.message
    assert _slots_held(home) == 0
    from automodel.sessions import SessionStore

    row = SessionStore(Layout.at(home).sessions_db).get("drop-dead0001")
    assert row["status"] == "failed" and f"pid {worker.pid}" in row["error"]


def _stored_outputs(home: Path, run_id: str) -> list[Path]:
    return list((home / "assets").rglob(f"{run_id}.*")) if (home / "assets").exists() else []


def _load(path: Path):
    return pd.read_parquet(path) if path.suffix == ".parquet" else pickle.loads(path.read_bytes())


def _predictions(completed: subprocess.CompletedProcess) -> pd.DataFrame:
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["status"] == "success", out
    return pd.read_csv(out["predictions_path"])


@pytest.mark.slow
def test_runs_killed_in_every_stage_then_a_run_finishes_in_normal_time(tmp_path, penguins_csv):
    """A SIGKILL inside each stage in turn, two in the model stage (11 kills on one home, one after another), then an
    uninterrupted run and reruns of killed ones.

    Issue 16, findings 1 and 2: the train pool has 2 slots, and two runs killed during model search used to block every later
    run in the home for ever; killed runs stayed `running` in sessions and STARTED in Dagster. The two model-stage kills (one
    per slot of the pool) are training runs (a long search budget keeps them inside the stage); the predictions-stage kill is
    a training run too (its model is stored when it dies); the other stages are killed in scoring runs, which pass through
    every stage without training, so reaching a late stage is quick. Every stage is killed once: the recovery and the
    stored outputs it must leave whole differ by stage, and repeating a kill in the same stage proves nothing more (the
    second model kill is what fills the pool). Whatever a killed run stored loads whole, and a rerun of a killed training run predicts
    exactly what an uninterrupted run predicted: the search budget is long enough that only the search's own stopping rule
    ends it, so training is deterministic.
    """
    home = tmp_path / "home"
    env = _env(home, AUTOMODEL_SEARCH_BUDGET_S="3")
    import joblib

    # Training that only the search's own stopping rule ends; linear models only, so the three such trainings take seconds.
    deterministic = {**env, "AUTOMODEL_SEARCH_BUDGET_S": "600", "AUTOMODEL_MODEL_FAMILIES": "linear"}
    train = ["run", str(penguins_csv), "--target", "species", "--json"]
    base = subprocess.run([*AUTOMODEL, *train], env=deterministic, cwd=REPO, capture_output=True, text=True, timeout=400, check=False)
    reference = _predictions(base)
    base_run = json.loads(base.stdout.strip().splitlines()[-1])["run_id"]
    score = ["score", str(penguins_csv), "--model", base_run, "--json"]
    killed = {}
    victims = Victims(env, tmp_path / "victims")
    try:
        for stage in STAGES:
            if stage == "model":  # both slots of the train pool held by dead runs
                plan = [(train, "600"), (train, "600")]
            elif stage == "predictions":  # the first stage after the model is stored: a training run leaves a whole model behind
                plan = [(train, "3")]
            else:
                plan = [(score, "3")]
            killed[stage] = []
            for args, budget in plan:
                run_id = _kill_inside(home, victims, args, stage, {"AUTOMODEL_SEARCH_BUDGET_S": budget})
                # Before the next command recovers the dead run (and clears its outputs): all it left visible is whole.
                for path in _stored_outputs(home, run_id):
                    _load(path)
                model_file = Layout.at(home).model_path(run_id)
                if args is train and stage == "predictions":
                    assert model_file.exists(), "the model of a run killed after storing it is kept until the run is recovered"
                if model_file.exists():
                    assert "fitted" in joblib.load(model_file)
                killed[stage].append(run_id)
    finally:
        victims.close()
    start = time.perf_counter()
    done = subprocess.run([*AUTOMODEL, *train], env=env, cwd=REPO, capture_output=True, text=True, timeout=400, check=False)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "success"
    sessions = _sessions(home, env)
    assert "logistic" in sessions[base_run]["model_type"], "AUTOMODEL_MODEL_FAMILIES reached the run's search"
    for stage, run_ids in killed.items():
        for run_id in run_ids:
            assert sessions[run_id]["status"] == "failed", (stage, sessions[run_id])
            assert f"died during stage {stage}" in sessions[run_id]["error"], (stage, sessions[run_id]["error"])
            assert f"automodel rerun {run_id}" in sessions[run_id]["error"]
    instance = _instance(home)
    runs = {r.tags["automodel/run_id"]: r for r in instance.get_runs() if "automodel/run_id" in r.tags}
    assert {runs[r].status for ids in killed.values() for r in ids} == {dg.DagsterRunStatus.FAILURE}, "every Dagster run record left STARTED"
    assert instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])) == []
    assert _slots_held(home) == 0
    for stage, run_id in (("model", killed["model"][0]), ("predictions", killed["predictions"][0])):
        rerun = subprocess.run([*AUTOMODEL, "rerun", run_id, "--json"], env=deterministic, cwd=REPO, capture_output=True, text=True, timeout=400,
                               check=False)
        predictions = _predictions(rerun)
        assert list(predictions.columns) == list(reference.columns) and len(predictions) == len(reference)
        assert predictions["prediction"].tolist() == reference["prediction"].tolist(), f"rerun after a kill inside {stage} differs"
        probabilities = [c for c in reference.columns if c != "prediction"]
        assert np.allclose(predictions[probabilities], reference[probabilities], rtol=1e-6), f"rerun after a kill inside {stage} differs"
        assert _sessions(home, env)[run_id]["status"] == "success"
    print(f"{sum(map(len, killed.values()))} kills survived in a row; the next run took {elapsed:.1f} s")
