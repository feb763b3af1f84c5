"""Plain-text tables for reports and MLflow artifacts."""

from __future__ import annotations


def markdown_table(rows: list[dict], floatfmt: str = ".3f") -> str:
    """A GitHub-style Markdown table from dicts sharing the same keys."""
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
