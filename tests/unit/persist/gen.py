#!/usr/bin/env python3
"""gen.py - regenerate the persistence fixtures used by test_persist.c.

Format version 1 (see src/persist.c): magic "MQTTDDB\\0", u32 version,
records (u8 type, u32 length, body), SHA-256 of everything before it.
Run from this directory: python3 gen.py"""

import hashlib
import struct

MAGIC = b"MQTTDDB\x00"
RETAINED, SESSION = 1, 2


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def msg(topic, payload, qos=1, retain=False, props=b"", expiry_at=0):
    return (s16(topic) + struct.pack("!I", len(props)) + props +
            struct.pack("!I", len(payload)) + payload +
            bytes([qos, 1 if retain else 0]) + struct.pack("!q", expiry_at))


def record(t, body, length=None):
    return bytes([t]) + struct.pack("!I", len(body) if length is None
                                    else length) + body


def session(client_id, nsubs=None):
    subs = [("fx/#", 1, 0, 0, 0)]
    b = s16(client_id) + b"\x00"                   # no username
    b += struct.pack("!IBIq", 0, 4, 0xFFFFFFFF, 1700000000)
    b += struct.pack("!H", 1)                      # next_pid
    b += struct.pack("!I", len(subs) if nsubs is None else nsubs)
    for f, q, fl, rh, sid in subs:
        b += s16(f) + bytes([q, fl, rh]) + struct.pack("!I", sid)
    b += struct.pack("!H", 0)                      # inflight
    b += struct.pack("!I", 1)                      # queue
    b += bytes([1, 0, 0]) + msg("fx/a", b"queued")
    b += struct.pack("!H", 0)                      # rx_qos2
    b += b"\x00"                                   # no will
    return b


def finish(body, version=1, magic=MAGIC):
    data = magic + struct.pack("!I", version) + body
    return data + hashlib.sha256(data).digest()


def write(name, data):
    with open(name, "wb") as f:
        f.write(data)


ret = record(RETAINED, msg("r/1", b"hello", retain=True))
sess = record(SESSION, session("fixture"))
valid = finish(ret + sess)
write("valid-v1.db", valid)

bad = bytearray(valid)
bad[30] ^= 0x20
write("corrupt-byte.db", bytes(bad))
write("truncated.db", valid[:40])
write("bad-version.db", finish(ret + sess, version=2))
write("bad-magic.db", finish(ret + sess, magic=b"MOSQDB\x00\x00"))
write("record-overrun.db",
      finish(ret + record(SESSION, session("fixture"), length=0xFFFFFF00)))
write("huge-sub-count.db",
      finish(ret + record(SESSION, session("fixture", nsubs=0xFFFFFFFF))))
write("trailing-in-record.db",
      finish(record(RETAINED, msg("r/1", b"hello", retain=True) + b"\x00")))
write("empty.db", b"")
