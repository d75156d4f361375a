"""Bad input is reported and loses nothing: broken files, settings, depth limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopscope.audit import audit, load_settings
from loopscope.audit.sources import MAX_FILE_BYTES
from loopscope.errors import UsageError

ROUTE = (
    "import time\nfrom fastapi import FastAPI\napp = FastAPI()\n\n"
    "def deep():\n    time.sleep(1)\n\n"
    "def middle():\n    deep()\n\n"
    "@app.get('/')\nasync def root():\n    middle()\n"
)


def test_broken_unreadable_and_huge_files_are_reported_and_the_rest_analysed(
    tmp_path: Path,
) -> None:
    (tmp_path / "main.py").write_text(ROUTE)
    (tmp_path / "broken.py").write_text("def oops(:\n    pass\n")
    (tmp_path / "latin1.py").write_bytes(b"name = '\xe9'\n")
    (tmp_path / "huge.py").write_text("x = 1\n" * (MAX_FILE_BYTES // 6 + 1))
    # Generated code nested beyond what the parser, or the steps after it, can recurse into.
    (tmp_path / "sum.py").write_text("async def f(x):\n    h(" + "+".join(["x"] * 400) + ")\n")
    (tmp_path / "chain.py").write_text("async def f(x):\n    x" + ".y" * 3000 + "()\n")
    result = audit(tmp_path)
    reasons = {p.path: p.reason for p in result.problems}
    assert reasons["sum.py"] == "skipped: nested 405 levels deep, over the 100-level limit"
    assert reasons["chain.py"].startswith("skipped:")
    assert reasons["broken.py"].startswith("syntax error at line 1")
    assert reasons["latin1.py"].startswith("unreadable")
    assert reasons["huge.py"].startswith("skipped")
    assert [(f.where, f.call) for f in result.findings] == [("main.py:6", "time.sleep")]
    assert result.files == 1


def test_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(ROUTE)
    (tmp_path / "app" / "again").symlink_to(tmp_path)
    result = audit(tmp_path)
    assert result.files == 1
    assert [(f.where, f.call) for f in result.findings] == [("app/main.py:6", "time.sleep")]


def test_max_depth_stops_following_calls(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(ROUTE)
    assert len(audit(tmp_path, load_settings(tmp_path, max_depth=2)).findings) == 1
    assert audit(tmp_path, load_settings(tmp_path, max_depth=1)).findings == []


def test_pyproject_adds_and_allows_blocking_calls(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(ROUTE + "    import vendor\n    vendor.fetch()\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.loopscope.audit]\nblocking-io = ["vendor.fetch"]\nallow = ["time.sleep"]\n'
    )
    result = audit(tmp_path, load_settings(tmp_path))
    assert [(f.code, f.call) for f in result.findings] == [("LS109", "vendor.fetch")]


def test_pyproject_names_classes_whose_with_block_blocks(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "from fastapi import FastAPI\nfrom vendor import Gate, Other\napp = FastAPI()\n"
        "GATE = Gate()\nOTHER = Other()\n\n"
        "@app.get('/')\nasync def root():\n    with GATE:\n        pass\n"
        "    with OTHER:\n        pass\n"
    )
    assert audit(tmp_path).findings == []
    (tmp_path / "pyproject.toml").write_text(
        '[tool.loopscope.audit]\nblocking-with = ["vendor.Gate"]\n'
    )
    result = audit(tmp_path, load_settings(tmp_path))
    assert [(f.code, f.where, f.call) for f in result.findings] == [
        ("LS109", "main.py:9", "vendor.Gate.__enter__")
    ]


def test_an_unknown_setting_is_a_usage_error_that_names_the_keys(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.loopscope.audit]\nblocking = ["x"]\n')
    with pytest.raises(UsageError, match=r"unknown key 'blocking'.*allow, blocking-cpu"):
        load_settings(tmp_path)


def test_a_folder_without_python_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no Python file"):
        audit(tmp_path)
