#!/usr/bin/env python3
"""Builds (once) the venv holding the pinned SDKs of requirements.txt and prints its python.

Usage: sdk_venv.py PARENT_DIR

The venv is PARENT_DIR/sdk-venv-<hash of requirements.txt>, so a changed pin builds a new one and
an unchanged one is reused between runs. An exclusive flock on PARENT_DIR/sdk-venv.lock keeps two
test processes from building it at once (the kernel releases it if a builder dies); the venv is
built under a temporary name and renamed into place only when complete, so a half-built venv is
never used. Only the standard library is needed: this runs with the system python3.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "requirements.txt")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    parent = os.path.abspath(sys.argv[1])
    os.makedirs(parent, exist_ok=True)
    with open(REQUIREMENTS, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    target = os.path.join(parent, f"sdk-venv-{key}")
    python = os.path.join(target, "bin", "python")
    with open(os.path.join(parent, "sdk-venv.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(python):
            build(target)
    print(python)
    return 0


def build(target: str) -> None:
    partial = f"{target}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"sdk_venv.py: building {target} (once per pin set)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True).create(partial)
    # The scripts pip writes into bin/ name the venv's path in their shebang; only bin/python is
    # used, through its absolute path, so the rename below does not break anything we run.
    pip = [os.path.join(partial, "bin", "python"), "-m", "pip"]
    subprocess.run(
        pip
        + ["install", "--disable-pip-version-check", "--no-input", "--quiet", "--timeout", "60"]
        + ["--requirement", REQUIREMENTS],
        check=True,
        stdout=sys.stderr,
    )
    os.rename(partial, target)


if __name__ == "__main__":
    sys.exit(main())
