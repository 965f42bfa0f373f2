#!/usr/bin/env python3
"""Builds (once) a venv holding the pinned packages of a requirements file and prints its python.

Usage: pinned_venv.py PARENT_DIR REQUIREMENTS_TXT

Tests use it for Python tools from PyPI (the OpenAI and Anthropic SDKs, schemathesis). The venv is
PARENT_DIR/venv-<hash of the requirements file>, so a changed pin builds a new one and an
unchanged one is reused between runs. An exclusive flock on PARENT_DIR/venv.lock keeps two
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

def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    parent = os.path.abspath(sys.argv[1])
    requirements = os.path.abspath(sys.argv[2])
    os.makedirs(parent, exist_ok=True)
    with open(requirements, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    target = os.path.join(parent, f"venv-{key}")
    python = os.path.join(target, "bin", "python")
    with open(os.path.join(parent, "venv.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(python):
            build(target, requirements)
    print(python)
    return 0


def build(target: str, requirements: str) -> None:
    partial = f"{target}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"pinned_venv.py: building {target} (once per pin set)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True).create(partial)
    # The scripts pip writes into bin/ name the venv's path in their shebang; only bin/python is
    # used, through its absolute path, so the rename below does not break anything we run.
    pip = [os.path.join(partial, "bin", "python"), "-m", "pip"]
    subprocess.run(
        pip
        + ["install", "--disable-pip-version-check", "--no-input", "--quiet", "--timeout", "60"]
        + ["--requirement", requirements],
        check=True,
        stdout=sys.stderr,
    )
    os.rename(partial, target)


if __name__ == "__main__":
    sys.exit(main())
