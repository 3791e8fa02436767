"""Hostile config files through `scip-jupyter check` (and every loader behind it).

Each case must give exit 1 and only `file:line: field: problem` lines (plus the
count line): never a traceback, never a hang, never a file written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scip_jupyter.checks import LOADERS, check_dir
from scip_jupyter.cli import main
from scip_jupyter.config import MAX_CONFIG_BYTES, ConfigError, load_yaml


def _bomb(levels: int = 7, width: int = 10) -> str:
    """Billion laughs: each level repeats the previous `width` times (width**levels nodes if expanded)."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"profiles: *a{levels}")
    return "\n".join(lines) + "\n"


#: (case id, file bytes, the field the problem names, words in the message)
CORPUS = [
    ("not-utf8", b"profiles:\n  - slug: caf\xe9\n", "(encoding)", "not UTF-8"),
    ("utf16", "profiles: []\n".encode("utf-16"), "(encoding)", "not UTF-8"),
    ("huge", b"# " + b"x" * (MAX_CONFIG_BYTES + 10) + b"\n", "(file)", "bytes"),
    ("alias-bomb", _bomb().encode(), "(aliases)", "alias"),
    ("deep-nesting", b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", "(nesting)", "deep"),
    ("top-level-list", b"- a\n- b\n", "(file)", "dictionary"),
    ("top-level-scalar", b"just words\n", "(file)", "dictionary"),
    ("number-as-top", b"42\n", "(file)", "dictionary"),
    ("complex-key", b"? [a, b]\n: value\n", "(syntax)", "key"),
    ("null-byte", b"profiles: [\x00]\n", "(syntax)", ""),
    ("tabs", b"profiles:\n\t- slug: x\n", "(syntax)", ""),
    ("unclosed", b"profiles: [a, b\n", "(syntax)", ""),
    ("python-tag", b"profiles: !!python/object/apply:os.system ['touch pwned']\n", "(syntax)", ""),
    ("duplicate-key", b"profiles: []\nprofiles: []\n", "profiles", "twice"),
]


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.parametrize("case, data, field, words", CORPUS, ids=[c[0] for c in CORPUS])
@pytest.mark.timeout(60)
def test_hostile_config_file_gets_file_line_messages(tmp_path, capsys, name, case, data, field, words):
    path = tmp_path / name
    path.write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert "Traceback" not in out.err + out.out
    assert lines and re.fullmatch(r"\d+ problem\(s\) in 1 file\(s\)", lines[-1]), out.err
    for line in lines[:-1]:
        assert re.match(rf"{re.escape(str(path))}:\d+: \S.*: ", line), line
    if field != "(file)" or case == "huge":
        assert any(f": {field}: " in line and words in line for line in lines), out.err
    else:  # a wrong top-level type: reported by the model, for the whole file
        assert any(words in line for line in lines), out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_non_utf8_names_the_line_of_the_bad_byte(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_bytes(b"profiles:\n  - slug: a\n  - slug: caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path}:3: (encoding): not UTF-8 text")


def test_a_config_that_is_a_folder_or_a_device_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "catalog.yaml").mkdir()
    (tmp_path / "arc.yaml").symlink_to("/dev/zero")  # reading it whole would never end
    _, problems = check_dir(tmp_path)
    text = "\n".join(map(str, problems))
    assert f"{tmp_path / 'catalog.yaml'}:1: (file): " in text
    assert f"{tmp_path / 'arc.yaml'}:1: (file): " in text


def test_a_few_aliases_are_still_fine(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("base: &b {image: x}\none: *b\ntwo: *b\n")
    data, lines = load_yaml(path)
    assert data["two"] == {"image": "x"} and lines[("two",)] == 3
