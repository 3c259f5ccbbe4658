"""The Flask hello app of bench/apps.py, built at import time.

Servers load it as `flask_hello:app`: uWSGI looks a callable up in the
module's __dict__, where apps.py's lazily built `flask_app` is not yet.
"""

from apps import make_flask_app

app = make_flask_app()
