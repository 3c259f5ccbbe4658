"""A small Flask application used as an example and by the integration tests.

Serve it with either of:

    rwsgi --chdir examples flask_app:app
    rwsgi --chdir examples 'flask_app:create_app()'
"""

import hashlib

from flask import Flask, Response, jsonify, request


def create_app():
    """Application factory: build and return a fresh Flask app."""
    app = Flask(__name__)

    @app.get("/")
    def index():
        return Response("Hello from Flask!", mimetype="text/plain")

    @app.get("/json")
    def json_view():
        return jsonify(
            message="Hello from Flask!",
            framework="flask",
            method=request.method,
            args=request.args.to_dict(),
        )

    @app.post("/echo")
    def echo():
        body = request.get_data()
        return Response(body, mimetype=request.mimetype or "application/octet-stream")

    @app.post("/upload")
    def upload():
        data = request.get_data()
        return jsonify(sha256=hashlib.sha256(data).hexdigest(), length=len(data))

    @app.post("/files")
    def files():
        # A multipart upload, as Flask handles it: large files are
        # spooled to a temporary file while the body streams in.
        upload = request.files["file"]
        digest, length = hashlib.sha256(), 0
        for piece in iter(lambda: upload.stream.read(65536), b""):
            digest.update(piece)
            length += len(piece)
        return jsonify(sha256=digest.hexdigest(), length=length, filename=upload.filename)

    return app


app = create_app()


if __name__ == "__main__":
    # Handy for a quick look without rwsgi: python examples/flask_app.py
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, app) as httpd:
        print("Serving on http://127.0.0.1:8000")
        httpd.serve_forever()
