"""pyproject.toml, the lock file the Makefile installs from, and environment.yml agree."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"lock line {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_lock_pins_torch_to_the_cpu_wheel_on_disk():
    assert lock()["torch"] == "2.13.0"


def test_every_dependency_is_locked_within_its_range():
    pins = lock()
    opt = project()["optional-dependencies"]
    for spec in project()["dependencies"] + opt["notebooks"] + opt["test"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not in requirements-lock.txt"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside {req.specifier}"


def test_environment_yml_installs_the_lock_file_and_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = re.search(r">=\s*([\d.]+)", project()["requires-python"]).group(1)
    assert tuple(map(int, python.split("=")[-1].split("."))) >= tuple(map(int, minimum.split(".")))
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements-lock.txt" in pip and "-e ." in pip


def test_makefile_installs_from_the_lock_file():
    assert "-r requirements-lock.txt" in (ROOT / "Makefile").read_text()
