"""A Gunicorn config as a module, for `-c python:conf_module`."""

import os

workers = int(os.environ.get("CONF_WORKERS", "2"))
timeout = 45
