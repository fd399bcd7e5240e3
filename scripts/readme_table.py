"""Write the README's table of shipped networks from their model cards (``make docs`` runs it).

python scripts/readme_table.py            # rewrites the block between the README's table markers
"""

from pathlib import Path

from fastnst.cli import style_table

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- the shipped networks: `make docs` writes this table from their model cards (fastnst info --table) -->"
END = "<!-- end of the table -->"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = style_table(sorted((ROOT / "checkpoints").glob("*.safetensors")))
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    main()
