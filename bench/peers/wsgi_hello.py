"""wsgi_hello.py: the plain WSGI peer of apps/hello for gunicorn (no framework): the same
13-byte answer, "Hello, World!\n", with Content-Type and Content-Length, to every request.
Run by bench/run as `gunicorn -k sync -w 2 wsgi_hello:app` and under uWSGI."""


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
