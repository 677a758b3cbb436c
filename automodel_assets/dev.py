"""`make dev`: the Dagster UI with DAGSTER_HOME under AUTOMODEL_HOME and the project's dagster.yaml."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from automodel.layout import Layout
from automodel_assets.runs import ensure_dagster_home


def main() -> None:
    layout = Layout.at(os.environ.get("AUTOMODEL_HOME", "./local_data"))
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(layout))
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    args = ["dagster", "dev", "-w", str(workspace), "--host", "127.0.0.1", *sys.argv[1:]]
    os.execvp(str(Path(sys.executable).parent / "dagster"), args)


if __name__ == "__main__":
    main()
