"""The package's public surface, settings and bundled sample."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

import nivl
from nivl.errors import ConfigError
from nivl.library import sample_paths
from nivl.settings import SETTINGS, Settings


def test_public_api_is_explicit() -> None:
    exported = {name for name in dir(nivl) if not name.startswith("_")}
    modules = {
        "captions",
        "cite",
        "cli",
        "credit",
        "derived",
        "documents",
        "embeddings",
        "errors",
        "exports",
        "grouping",
        "groups",
        "hybrid",
        "iiif",
        "ingest",
        "jsonstream",
        "library",
        "matching",
        "media",
        "migrations",
        "pictures",
        "query",
        "records",
        "render",
        "search_index",
        "settings",
        "store",
        "suggest",
        "upstream",
        "urls",
        "vector_index",
        "visual",
        "web",
    }
    assert exported - modules == set(nivl.__all__) - {"__version__"}


def test_settings_precedence_flag_env_default(tmp_path: Path) -> None:
    env = {"NIVL_HOME": str(tmp_path / "env"), "NIVL_PORT": "9000", "NIVL_LOAD_SAMPLE": "no"}
    settings = Settings.from_env(env)
    assert settings.home == tmp_path / "env" and settings.port == 9000
    assert settings.load_sample is False
    flagged = Settings.from_env(env, home=str(tmp_path / "flag"), port=7000)
    assert flagged.home == tmp_path / "flag" and flagged.port == 7000
    default = Settings.from_env({})
    assert default.port == 8000 and default.home.name == "nivl"
    assert default.db_path == default.home / "nivl.db"
    assert default.index_path == default.home / "index"


def test_settings_table_matches_the_dataclass() -> None:
    fields = {name for name in Settings.__dataclass_fields__}
    assert {name for name, _default, _help in SETTINGS} == fields
    defaults = Settings.from_env({})
    for name, default, help_text in SETTINGS:
        assert help_text
        if name != "home":
            assert getattr(defaults, name) == default


@pytest.mark.parametrize("env", [{"NIVL_PORT": "x"}, {"NIVL_LOAD_SAMPLE": "maybe"}])
def test_bad_settings_raise_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)
    with pytest.raises(ConfigError):
        Settings.from_env({}, colour="red")


def test_bundled_sample_is_small_and_real(shared_items: list[dict]) -> None:
    paths = sample_paths()
    assert paths and sum(p.stat().st_size for p in paths) <= 2 * 1024 * 1024
    with gzip.open(paths[0], "rt") as handle:
        sample = [json.loads(line) for line in handle]
    assert sample == shared_items[: len(sample)] and len(sample) > 1000


def test_every_pinned_dependency_is_imported() -> None:
    """A pin nothing imports is dead weight to install and to keep patched (stamina was one)."""
    import ast
    import tomllib

    root = Path(__file__).resolve().parents[1]
    pins = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {pin.split("==")[0].lower().replace("-", "_") for pin in pins}
    imported: set[str] = set()
    for path in (root / "src" / "nivl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
            elif (  # importlib.resources.files("pkg"): a package used for its files
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "files"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                imported.add(node.args[0].value.split(".")[0])
    # a distribution's import name may differ from its own (pillow is imported as PIL)
    from importlib.metadata import packages_distributions

    names = packages_distributions()
    imported |= {d.lower().replace("-", "_") for m in imported for d in names.get(m, [])}
    assert wanted - imported == set()


def test_docs_settings_lists_every_setting_as_the_code_has_it() -> None:
    """docs/settings.md (cited by settings.py) agrees with SETTINGS, row by row."""
    root = Path(__file__).resolve().parents[1]
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in (root / "docs" / "settings.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    assert [row[0] for row in rows] == [name for name, _default, _help in SETTINGS]
    for (name, default, help_text), (_name, variable, shown, meaning) in zip(
        SETTINGS, rows, strict=True
    ):
        assert variable == f"NIVL_{name.upper()}"
        assert meaning == help_text
        if default not in (None, ""):
            assert shown == (str(default).lower() if isinstance(default, bool) else str(default))


def test_no_module_imports_another_package_s_private_modules() -> None:
    """``typer._click`` and the like change without notice between releases."""
    import ast

    private = []
    for path in (Path(__file__).resolve().parents[1] / "src" / "nivl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                if any(part.startswith("_") for part in name.split(".")[1:]):
                    private.append(f"{path.name}: {name}")
    # The one exception, on purpose: uvicorn (pinned) forks its workers only if its
    # ``_subprocess.spawn`` is swapped (listener._fork_workers); if a release drops it, the
    # workers are spawned again, slower but the same.
    assert private == ["listener.py: uvicorn._subprocess"]


INDEX_MODULES = {"search_index.py", "matching.py"}


def test_the_cli_and_web_layers_use_only_the_library_door() -> None:
    """No ``library.store`` / ``library.index`` outside library.py, and tantivy's types stay
    inside the index module, search_index.py, and matching.py, which builds its ``q``
    queries (issue 15: the grep counted 18 such places)."""
    src = Path(nivl.__file__).parent
    reaches, tantivy_users = [], []
    for path in src.rglob("*.py"):
        text = path.read_text()
        if path.name != "library.py":
            reaches += [
                f"{path.name}: {line.strip()}"
                for line in text.splitlines()
                if "library.store" in line or "library.index" in line
            ]
        if path.name not in INDEX_MODULES and re.search(r"^\s*(from|import) tantivy", text, re.M):
            tantivy_users.append(path.name)
    assert reaches == []
    assert tantivy_users == []
