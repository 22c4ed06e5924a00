"""The code block extractor on small Markdown files: what the example tests run must be exactly
what a reader sees."""

from __future__ import annotations

from pathlib import Path

from tests.docs.examples import CodeBlock, code_blocks, is_assignment_only, shell_commands

_MARKDOWN = """# Title

Inline `code` and ``` in a sentence ``` are no blocks.

```sh
curl -s localhost:8000/healthz
```

1. A step:

   ```python
   import json
   if True:
       print(json.dumps({}))
   ```

~~~~console
$ auscult train audio --data DIR \\
    --out OUT
training...
$ echo done
done
~~~~

````text
```sh
echo a fence shown, not run
```
````

```
no language
"""


def _blocks(tmp_path: Path) -> list[CodeBlock]:
    (tmp_path / "doc.md").write_text(_MARKDOWN, encoding="utf-8")
    return code_blocks(tmp_path / "doc.md", root=tmp_path)


def test_blocks_their_lines_and_languages(tmp_path: Path) -> None:
    blocks = _blocks(tmp_path)
    assert [(b.id, b.language, b.kind) for b in blocks] == [
        ("doc.md:5", "sh", "shell"),
        ("doc.md:11", "python", "python"),
        ("doc.md:17", "console", "shell"),
        ("doc.md:25", "text", "other"),
        ("doc.md:31", "", None),  # unclosed, no language: the tests refuse it
    ]
    assert blocks[0].text == "curl -s localhost:8000/healthz\n"
    # A shorter fence inside does not close it.
    assert blocks[3].text == "```sh\necho a fence shown, not run\n```\n"


def test_a_block_in_a_list_item_loses_the_item_indentation_only(tmp_path: Path) -> None:
    python = _blocks(tmp_path)[1]
    assert python.text == "import json\nif True:\n    print(json.dumps({}))\n"


def test_console_blocks_keep_commands_and_drop_output(tmp_path: Path) -> None:
    console = _blocks(tmp_path)[2]
    assert shell_commands(console) == (
        "auscult train audio --data DIR \\\n    --out OUT\necho done\n"
    )


def test_assignment_only_blocks() -> None:
    assert is_assignment_only("MODEL=uav-propeller\nCLIP=../a/b.flac  # a flight\n")
    assert not is_assignment_only("A=1 docker compose up -d\n")
    assert not is_assignment_only("# only a comment\n")
