"""Builds the Rust engine (the repository's `caspers-replay` binary, one directory up) with
cargo and ships it inside the package, so `pip install ./python` is all a user runs."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CRATE = HERE.parent


class BuildWithEngine(build_py):
    def run(self):
        super().run()
        manifest = CRATE / "Cargo.toml"
        if not manifest.is_file():
            raise SystemExit(
                f"caspers-replay: the Rust crate is not at {manifest}; install from the "
                "repository's python/ directory (pip install ./python)"
            )
        target = Path(os.environ.get("CARGO_TARGET_DIR", CRATE / "target"))
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "caspers-replay",
             "--manifest-path", str(manifest)],
            check=True,
        )
        dest = Path(self.build_lib) / "caspers_replay" / "bin"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target / "release" / "caspers-replay", dest / "caspers-replay")


setup(cmdclass={"build_py": BuildWithEngine})
