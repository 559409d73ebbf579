"""A hub-managed service for the tests: listens where
JUPYTERHUB_SERVICE_URL says and answers every GET with what it was given
(its JUPYTERHUB_* and JHTEST_* environment, pid, working directory and
the request's path), as JSON."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("JUPYTERHUB_", "JHTEST_"))
        }
        body = json.dumps(
            {"env": env, "pid": os.getpid(), "cwd": os.getcwd(), "path": self.path}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("service-echo: " + (format % args) + "\n")


url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
server = HTTPServer((url.hostname, url.port), Echo)
print(f"service-echo: listening on {url.hostname}:{url.port}", flush=True)
server.serve_forever()
