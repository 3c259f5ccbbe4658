"""Start the servers that have no command line of their own.

    python bench/runners.py bjoern   APP HOST PORT
    python bench/runners.py meinheld APP HOST PORT

APP is a name in bench/apps.py (hello, big, echo, stream, sleep10, flask_app).
Both servers are single-process and single-threaded; this is their own
documented way to run (bjoern.run; meinheld.server.listen + run), with
access logging off and keep-alive on (meinheld's default is off).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    kind, name, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import apps

    app = getattr(apps, name)
    if kind == "bjoern":
        import bjoern

        # bjoern has no access log; its listen backlog defaults to 1024.
        bjoern.run(app, host, port)
    elif kind == "meinheld":
        from meinheld import server

        server.set_access_logger(None)
        server.set_keepalive(10)
        server.set_backlog(1024)
        server.listen((host, port))
        server.run(app)
    else:
        sys.exit("unknown server kind %r" % kind)


if __name__ == "__main__":
    main()
