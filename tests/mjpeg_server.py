"""Test helper: a local MJPEG-over-HTTP camera (what many IP cameras serve), run as a process.

``python mjpeg_server.py [PORT]`` prints the port it listens on, then streams 64x48 frames at
~50 fps to every client (grey level = 10 * frame number). Killing the process is a camera that
drops off the network; starting it again on the same port brings it back.
"""

from __future__ import annotations

import http.server
import socketserver
import sys
import time

import cv2
import numpy as np


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        try:
            while True:
                ok, jpg = cv2.imencode(".jpg", np.full((48, 64, 3), (10 * i) % 256, np.uint8))
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                self.wfile.write(head + jpg.tobytes() + b"\r\n")
                i += 1
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            return


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    server = _Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), _Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
