"""A real HTTP server on 127.0.0.1 for the download tests: it serves state dicts under
torchvision-style names (``<name>-<first 8 hex digits of its sha256>.pth``), one with a wrong
prefix, and one that drops the connection half-way; ``/drip/<name>`` sends one byte every
``DRIP_S`` seconds, ``/endless/<name>`` streams zeros with no length until the client hangs up, and
``/huge/<name>`` promises a terabyte."""
import hashlib
import io
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from model_zoo.shapes.recipes import RECIPES, build


def state_dict_bytes(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save(build(RECIPES["shapes-weak"]).state_dict(), buf)
    return buf.getvalue()


DRIP_S = 0.25


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path.startswith("/drop/"):  # promise the whole file, send half, hang up
            data = (Path(self.directory) / self.path[len("/drop/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        try:
            if self.path.startswith("/drip/"):  # a slow server: a byte at a time, never done in time
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(1000000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(DRIP_S)
                return
            if self.path.startswith("/endless/"):  # no Content-Length: the body ends when the connection does
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                block = bytes(1 << 16)
                while True:
                    self.wfile.write(block)
                return
            if self.path.startswith("/huge/"):
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                return
            super().do_GET()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a bound it enforces)
            return


class WeightsServer:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        data = state_dict_bytes()
        self.good_name = f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        (root / self.good_name).write_bytes(data)
        self.size = len(data)
        self.bad_name = "tinynet-deadbeef.pth"  # the name promises a hash the bytes do not have
        (root / self.bad_name).write_bytes(data)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
