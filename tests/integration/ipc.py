"""A client for Yubin's internal encoding (libutil/ipc.h), for tests: the
handshake, typed fields, request ids and descriptors passed with
SCM_RIGHTS. Fields come back as a list of (name, value) pairs, since names
may repeat."""
import socket
import struct

STR, BYTES, INT = b"s", b"b", b"i"


def encode(fields):
    """fields: list of (name, value); str -> text, bytes -> bytes, int -> int."""
    out = bytearray()
    for name, value in fields:
        n = name.encode()
        if isinstance(value, bool):
            raise TypeError("use int, not bool")
        if isinstance(value, int):
            out += INT + bytes([len(n)]) + n + struct.pack(">q", value)
        else:
            data = value.encode() if isinstance(value, str) else bytes(value)
            out += (STR if isinstance(value, str) else BYTES) + bytes([len(n)]) + n
            out += struct.pack(">I", len(data)) + data
    return struct.pack(">I", len(out)) + bytes(out)


def decode(payload):
    fields, i = [], 0
    while i < len(payload):
        t, nlen = payload[i:i + 1], payload[i + 1]
        name = payload[i + 2:i + 2 + nlen].decode()
        i += 2 + nlen
        if t == INT:
            fields.append((name, struct.unpack(">q", payload[i:i + 8])[0]))
            i += 8
        else:
            (vlen,) = struct.unpack(">I", payload[i:i + 4])
            data = payload[i + 4:i + 4 + vlen]
            fields.append((name, data.decode() if t == STR else data))
            i += 4 + vlen
    return fields


class Reply(list):
    def get(self, name, default=None):
        for k, v in self:
            if k == name:
                return v
        return default

    def all(self, name):
        return [v for k, v in self if k == name]


class Client:
    def __init__(self, path, protocol, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.req = 0
        self.sock.sendall(encode([("hello", "yubin"), ("protocol", protocol), ("version", 1)]))
        hello = self.read()
        if hello.get("status") != "ok":
            raise ConnectionError(f"handshake refused: {hello.get('reason')}")

    def read(self):
        head = self._exact(4)
        (n,) = struct.unpack(">I", head)
        return Reply(decode(self._exact(n)))

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def request(self, fields, fd=None):
        """Send fields plus a request id (and fd if given); return the reply."""
        self.req += 1
        declare = [] if fd is None else [("fd", 1)]  # the request carries a descriptor
        frame = encode(list(fields) + [("req", self.req)] + declare)
        if fd is None:
            self.sock.sendall(frame)
        else:
            socket.send_fds(self.sock, [frame], [fd])
        reply = self.read()
        assert reply.get("req") == self.req, reply
        return Reply([(k, v) for k, v in reply if k != "req"])

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
