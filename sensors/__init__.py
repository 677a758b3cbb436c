"""Sensors and schedules: drop folders (local, S3), lake changes, scheduled lake syncs."""

from sensors.local_drop import local_drop_sensor

SENSORS = [local_drop_sensor]
SCHEDULES: list = []

__all__ = ["SENSORS", "SCHEDULES", "local_drop_sensor"]
