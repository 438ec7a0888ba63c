"""A throttling TCP proxy for the fault campaign's upload-kill case.

    slow_proxy.py LISTEN_PORT TARGET_PORT BYTES_PER_SECOND MARKER

Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT (the S3 server). The client-to-
server direction is slowed to BYTES_PER_SECOND (per connection), the other is not. When a
connection sends an HTTP request line ``PUT <path> HTTP/1.1`` whose path has ``/models/`` in
it (a model artifact upload), MARKER is written (one JSON line: the request line and its
Content-Length), and from then on ``MARKER.bytes`` holds how many bytes of that request's
body have been forwarded so far; the script that waits for MARKER then knows an upload is
in flight. Every connection's end is printed (stdout) with what it forwarded.
"""
import json, os, re, socket, sys, threading, time

REQUEST = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.[01]\r\n")
LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
CHUNK = 4096


def say(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pipe_up(client, server, rate, marker, conn):
    """Client to server, throttled, watching for the artifact PUT."""
    head = b""          # the request head being read (until the blank line)
    upload = None       # {"line", "length", "sent"} once the models PUT was seen
    total = 0
    due = time.monotonic()   # when the bytes forwarded so far may have gone, at `rate`
    try:
        while True:
            data = client.recv(CHUNK)
            if not data:
                break
            if upload is None:
                head = (head + data)[-16384:]
                found = list(REQUEST.finditer(head))
                m = found[-1] if found else None
                end = head.find(b"\r\n\r\n", m.start()) if m else -1
                if m and m.group(1) == b"PUT" and b"/models/" in m.group(2) and end >= 0:
                    length = LENGTH.search(head, m.start(), end + 2)
                    upload = {"line": m.group(0).decode(errors="replace").strip(),
                              "length": int(length.group(1)) if length else None,
                              "sent": len(head) - end - 4}
                    write(marker, json.dumps({k: upload[k] for k in ("line", "length")}) + "\n")
                    say(f"conn {conn}: upload seen: {upload['line']} (Content-Length {upload['length']})")
            else:
                upload["sent"] += len(data)
            if upload is not None:
                write(marker + ".bytes", str(max(upload["sent"], 0)))
            server.sendall(data)
            total += len(data)
            # Throttle: no bursts (an idle connection earns nothing).
            now = time.monotonic()
            due = max(due, now) + len(data) / rate
            if due > now:
                time.sleep(due - now)
    except OSError as e:
        say(f"conn {conn}: client side: {e}")
    finally:
        if upload is not None:
            say(f"conn {conn}: client gone after {upload['sent']} of {upload['length']} body bytes of {upload['line']}")
        say(f"conn {conn}: closed, {total} bytes forwarded to the server")
        for s in (server, client):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pipe_down(server, client):
    try:
        while True:
            data = server.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    listen, target, rate, marker = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen))
    ls.listen(64)
    say(f"forwarding :{listen} to :{target}, client to server at {rate:.0f} B/s")
    n = 0
    while True:
        client, _ = ls.accept()
        n += 1
        try:
            server = socket.create_connection(("127.0.0.1", target))
        except OSError as e:
            say(f"conn {n}: cannot reach the server: {e}")
            client.close()
            continue
        threading.Thread(target=pipe_up, args=(client, server, rate, marker, n), daemon=True).start()
        threading.Thread(target=pipe_down, args=(server, client), daemon=True).start()


if __name__ == "__main__":
    main()
