#!/usr/bin/env python3
"""Makes the room's short sounds in assets/sounds/ (48 kHz mono 16-bit WAV): a rising chime when
someone joins, a falling one when someone leaves, a soft blip for a chat line. Made here from
sines, so they are ours to share (CC0). Run again after changing a note: python3 scripts/sounds.py
"""
import math
import os
import struct
import wave

RATE = 48_000
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "sounds")


def note(freq, length, amp, decay):
    """A bell-like note: a sine with a little octave, 5 ms attack, exponential decay, 10 ms fade."""
    n = int(RATE * length)
    out = []
    for i in range(n):
        t = i / RATE
        env = min(1.0, t / 0.005) * math.exp(-t * decay) * min(1.0, (n - i) / (0.010 * RATE))
        s = math.sin(2 * math.pi * freq * t) + 0.25 * math.sin(4 * math.pi * freq * t)
        out.append(amp * env * s / 1.25)
    return out


def overlay(parts):
    """Notes starting at given times (seconds), added together."""
    length = max(int(start * RATE) + len(samples) for start, samples in parts)
    out = [0.0] * length
    for start, samples in parts:
        offset = int(start * RATE)
        for i, s in enumerate(samples):
            out[offset + i] += s
    return out


def write(name, samples):
    path = os.path.join(HERE, name)
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, s)) * 32767)) for s in samples))
    print(f"{path}: {len(samples) / RATE:.2f} s")


os.makedirs(HERE, exist_ok=True)
# E5 then A5: someone arrives.
write("join.wav", overlay([(0.0, note(659.3, 0.22, 0.30, 14)), (0.11, note(880.0, 0.30, 0.30, 10))]))
# A5 then E5: someone goes.
write("leave.wav", overlay([(0.0, note(880.0, 0.22, 0.26, 14)), (0.11, note(659.3, 0.30, 0.26, 10))]))
# One short high blip: a chat line.
write("chat.wav", note(1318.5, 0.09, 0.22, 40))
