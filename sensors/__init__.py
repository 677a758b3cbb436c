"""Sensors and schedules: drop folders (local, S3), lake changes, scheduled lake syncs."""

from sensors.lake import lake_automation_sensor, lake_change_sensor
from sensors.local_drop import local_drop_sensor
from sensors.run_status import dead_run_recovery, run_failure_recorder
from sensors.s3_drop import s3_drop_sensor
from sensors.schedules import lake_sync_job, lake_sync_schedule

SENSORS = [local_drop_sensor, s3_drop_sensor, lake_change_sensor, lake_automation_sensor, run_failure_recorder, dead_run_recovery]
SCHEDULES = [lake_sync_schedule]
JOBS = [lake_sync_job]

__all__ = ["JOBS", "SENSORS", "SCHEDULES", "dead_run_recovery", "lake_automation_sensor", "lake_change_sensor", "lake_sync_job", "lake_sync_schedule",
           "local_drop_sensor", "run_failure_recorder", "s3_drop_sensor"]
