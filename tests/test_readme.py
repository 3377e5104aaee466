"""The README's Python block runs as printed (from the repository root)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_block_runs(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python"):]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Python section has no python block"
    monkeypatch.chdir(ROOT)
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) < 0  # ℓ
    assert float(printed[-1]) < 0.002  # projection of the training individuals lands on their fitted Q
