"""The event store: every verdict worth keeping (scored clips, alarmed stream stretches, sensor
series with alarms), its evidence on disk within a quota, and the labels operators give it."""
