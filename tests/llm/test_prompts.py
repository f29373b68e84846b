"""Prompts as data: every shipped prompt loads; bad files and missing variables are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.errors import PromptError, UnknownNameError
from safellm.llm.prompts import available, load_prompt

SHIPPED = Settings().prompts_dir


def test_shipped_prompts_load_and_render() -> None:
    have = available(SHIPPED)
    assert {"explain-risk", "chat", "judge"} <= set(have)
    for name in have:
        p = load_prompt(SHIPPED, name)
        msgs = p.render(**{v: f"<{v}>" for v in p.spec.variables})
        assert [m.role for m in msgs] == ["system", "user"]
        body = msgs[0].content + msgs[1].content
        for v in p.spec.variables:
            assert f"<{v}>" in body
        assert p.version == f"{name}@v{have[name][-1]}" and p.spec.changelog


def test_explain_prompt_puts_the_fixed_text_first() -> None:
    """The system message has no variables, so a local model reuses its cached prefix."""
    p = load_prompt(SHIPPED, "explain-risk")
    a = p.render(**{v: "A" for v in p.spec.variables})
    b = p.render(**{v: "B" for v in p.spec.variables})
    assert a[0] == b[0]


def test_missing_variable_is_an_error_naming_it() -> None:
    p = load_prompt(SHIPPED, "explain-risk")
    given = {v: "x" for v in p.spec.variables if v != "notes"}
    with pytest.raises(PromptError, match=r"needs variable\(s\) notes"):
        p.render(**given)
    with pytest.raises(PromptError, match="takes no variable"):
        p.render(**given, notes="n", surprise="s")


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


GOOD = """name: demo
version: {v}
changelog: test
variables: [x]
system: fixed
user: "value {{x}}"
"""


def test_highest_version_is_taken_unless_one_is_asked(tmp_path: Path) -> None:
    _write(tmp_path, "demo.v1.yaml", GOOD.format(v=1))
    _write(tmp_path, "demo.v2.yaml", GOOD.format(v=2))
    assert load_prompt(tmp_path, "demo").version == "demo@v2"
    assert load_prompt(tmp_path, "demo", 1).version == "demo@v1"
    with pytest.raises(UnknownNameError, match="no version 3"):
        load_prompt(tmp_path, "demo", 3)
    with pytest.raises(UnknownNameError, match=r"unknown prompt 'nope'.*available: demo"):
        load_prompt(tmp_path, "nope")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD.format(v=1).replace("variables: [x]", "variables: []"), "undeclared: \\['x'\\]"),
        (GOOD.format(v=1).replace("variables: [x]", "variables: [x, y]"), "unused: \\['y'\\]"),
        (GOOD.format(v=1).replace("changelog: test\n", ""), "changelog: Field required"),
        (GOOD.format(v=1).replace("version: 1", "version: 7"), "the file says demo v7"),
        ("name: [unclosed", "cannot read the prompt file"),
    ],
)
def test_invalid_prompt_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    _write(tmp_path, "demo.v1.yaml", text)
    with pytest.raises(PromptError, match=match):
        load_prompt(tmp_path, "demo")
