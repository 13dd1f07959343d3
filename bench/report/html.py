"""Render one list of blocks twice: a self-contained HTML page (images inlined as base64 data URIs,
inline CSS, nothing fetched; or, with `image_dir`, images linked from the figures/ folder next to it, which
halves a published folder's size) and Markdown (images as files under figures/).

A block is a tuple: ("h1"|"h2"|"h3"|"p", text), ("ul", [items]), ("table", header, rows), ("img", name, png_bytes, caption)
or ("pre", text)."""

from __future__ import annotations

import base64
from html import escape

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
h3 { margin-top: 1.5em; }
li { margin: .3em 0; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; white-space: nowrap; }
td:last-child { white-space: normal; min-width: 14em; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def to_html(blocks: list[tuple], title: str, image_dir: str | None = None) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{escape(b[1])}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{escape(str(x))}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in b[1]) + "</tr>")
            for row in b[2]:
                out.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif kind == "img":
            _, name, data, caption = b
            src = (f"{image_dir}/{name}.png" if image_dir is not None
                   else "data:image/png;base64," + base64.b64encode(data).decode("ascii"))
            out.append(f'<figure><img src="{src}" alt="{escape(caption)}">'
                       f"<figcaption>{escape(caption)}</figcaption></figure>")
        elif kind == "pre":
            out.append(f"<pre>{escape(b[1])}</pre>")
        else:
            raise ValueError(f"unknown block {kind}")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _md_cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(header: list, rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(blocks: list[tuple], figures_dir: str = "figures") -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}")
        elif kind == "h2":
            out.append(f"## {b[1]}")
        elif kind == "h3":
            out.append(f"### {b[1]}")
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {str(x)}" for x in b[1]))
        elif kind == "table":
            out.append(md_table(b[1], b[2]))
        elif kind == "img":
            _, name, _, caption = b
            out.append(f"![{caption}]({figures_dir}/{name}.png)\n\n*{caption}*")
        elif kind == "pre":
            fence = "```"
            while fence in b[1]:
                fence += "`"
            out.append(f"{fence}\n{b[1].rstrip()}\n{fence}")
        else:
            raise ValueError(f"unknown block {kind}")
    return "\n\n".join(out) + "\n"
