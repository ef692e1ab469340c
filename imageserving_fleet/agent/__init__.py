"""The per-host half: the Server Supervisor daemon and the `imageserving` control script."""
