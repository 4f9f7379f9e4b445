#!/usr/bin/env python3
"""A taskq kind in Python, served by `worker --exec-lines 'upper=python3 examples/exec-lines/upper.py'`.

Reads one JSON item per line on stdin and writes one JSON output per line on stdout, in order: here each
item is a text, and its output the text in upper case with its length. Flush after every line, so the
worker gets each output at once.
"""
import json
import sys

for line in sys.stdin:
    text = json.loads(line)
    print(json.dumps({"upper": str(text).upper(), "length": len(str(text))}), flush=True)
