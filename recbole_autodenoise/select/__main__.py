"""``python -m recbole_autodenoise.select --model=M --dataset=D --out=report.json [...]``."""

from recbole_autodenoise.select.command import main

if __name__ == "__main__":
    raise SystemExit(main())
