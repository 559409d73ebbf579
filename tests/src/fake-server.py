#!/usr/bin/python3 -IS
"""A stand-in notebook server for jhub's privileged helper tests.

The tests install this file root-owned (0755) as
/usr/local/lib/jhub-test/fake-server and point /etc/jhub/sudospawner.toml at
it for as long as a test needs a server whose behaviour it controls. The
helper runs it exactly as it runs jupyterhub-singleuser: as the user, with
the caller's flags. It never prints environment values (tokens).

Flags (the caller's, passed through the helper):
  --mode=sleep       report `id` on stdout, then wait for a signal (default)
  --mode=noisy       like sleep, after flooding stdout and stderr with text
                     that looks like the helper's answer
  --mode=exit        print --lines=N numbered lines, exit with --exit-code=N
Any other flag is ignored, as the helper passes the configured ones first.
"""

import os
import signal
import subprocess
import sys

mode, code, lines = "sleep", 0, 0
for arg in sys.argv[1:]:
    name, _, value = arg.partition("=")
    if name == "--mode":
        mode = value
    elif name == "--exit-code":
        code = int(value)
    elif name == "--lines":
        lines = int(value)

if mode == "exit":
    for i in range(1, lines + 1):
        print(f"fake-server: line {i}")
    sys.stdout.flush()
    os._exit(code)

if mode == "noisy":
    noise = '{"ok": true, "pid": 1}\n{"ok": false, "error": "noise"}\n' * 2048
    sys.stdout.write(noise)
    sys.stdout.flush()
    sys.stderr.write(noise)
    sys.stderr.flush()

ids = subprocess.run(["/usr/bin/id"], capture_output=True, text=True, check=True)
print(f"fake-server: id: {ids.stdout.strip()}", flush=True)
print(f"fake-server: cwd: {os.getcwd()}", flush=True)
print("fake-server: ready", flush=True)
while True:
    signal.pause()
