"""Does TCP_DEFER_ACCEPT close a connection that never sends a byte? A listening socket with a 2 s
defer, a client that connects and stays silent: if accept() still returns it, the option only delays
the connection, and a server (granian) that waits for the first byte would hold it all the same.
Run: python results/bench-quiet-s10/defer-accept.py"""
import json
import socket
import time

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 2)
server.bind(("127.0.0.1", 0))
server.listen(16)
server.settimeout(30)
client = socket.create_connection(server.getsockname())
started = time.perf_counter()
try:
    conn, _ = server.accept()
    accepted_after_s = round(time.perf_counter() - started, 1)
    conn.close()
except TimeoutError:
    accepted_after_s = None
client.close()
print(json.dumps({"defer_s": 2, "silent_connection_accepted_after_s": accepted_after_s}))
