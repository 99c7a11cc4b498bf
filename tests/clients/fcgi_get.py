"""Sends one FastCGI GET request for a script to php-fpm (host, port, script path), the way a
web server would, so that the tests get php-fpm's own log lines."""
import socket
import struct
import sys


def record(kind, request_id, content):
    return struct.pack("!BBHHBx", 1, kind, request_id, len(content), 0) + content


def pair(key, value):
    key, value = key.encode(), value.encode()

    def length(n):
        return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)

    return length(len(key)) + length(len(value)) + key + value


host, port, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
params = {
    "SCRIPT_FILENAME": script,
    "SCRIPT_NAME": "/" + script.rsplit("/", 1)[-1],
    "REQUEST_METHOD": "GET",
    "REQUEST_URI": "/" + script.rsplit("/", 1)[-1],
    "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "REMOTE_ADDR": "127.0.0.1",
}
BEGIN, PARAMS, STDIN = 1, 4, 5
body = b"".join(pair(k, v) for k, v in params.items())
conn = socket.create_connection((host, port), timeout=10)
conn.sendall(
    record(BEGIN, 1, struct.pack("!HB5x", 1, 0))
    + record(PARAMS, 1, body)
    + record(PARAMS, 1, b"")
    + record(STDIN, 1, b"")
)
while conn.recv(65536):
    pass
