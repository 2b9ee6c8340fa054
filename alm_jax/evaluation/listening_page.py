"""A static HTML listening page, in the style of the AiLive Mixer paper's demo page.

    page = listening_page.render('ALM evaluation', columns=['TARGET', 'RAW', 'ALM-MR'], rows=rows)
    listening_page.write('out/index.html', page)   # checks that every referenced file exists

One table row per song segment, one column per system: an `<audio>` player and,
below it, the image of that system's gains (and of a stereo mixer's pans). All links
are relative to the page's folder, so the folder opens in a browser straight from disk
(file://), with no server, and can be copied or zipped as a whole.
"""

import dataclasses
import html
import html.parser
import os
import urllib.parse
from typing import Optional, Sequence

import numpy as np

from alm_jax import audio_io
from alm_jax import outputs

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.4em; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.song { white-space: nowrap; }
td.song .details { color: #555; font-size: 0.85em; }
audio { width: 320px; display: block; }
img.gains { width: 320px; display: block; margin-top: 0.3em; }
.caption { font-size: 0.8em; color: #444; margin-top: 0.2em; }
p.note { max-width: 60em; }
"""


@dataclasses.dataclass(frozen=True)
class Cell:
  """One system's result for one segment.

  Attributes:
    audio: path of the audio file, relative to the page's folder ('/' separators).
    image: path of the gain plot, relative to the page's folder, or None.
    caption: a short line under the player (e.g. a few metrics).
    pan_image: path of a stereo mixer's stereo-image plot (its pans), relative, or None.
  """
  audio: str
  image: Optional[str] = None
  caption: str = ''
  pan_image: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Row:
  """One song segment: a title, detail lines, and one cell (or None) per column."""
  title: str
  details: Sequence[str]
  cells: Sequence[Optional[Cell]]


def _href(path: str) -> str:
  """A relative path as a URL: percent-encoded, so odd file names still resolve from disk."""
  if os.path.isabs(path) or '\\' in path or path.startswith('/') or '://' in path:
    raise ValueError(f'Listening-page links must be relative paths with "/" separators, got '
                     f'{path!r}: the page must open from disk wherever its folder is copied.')
  return html.escape(urllib.parse.quote(path, safe='/'), quote=True)


def _cell_html(cell: Optional[Cell], column: str) -> str:
  if cell is None:
    return '<td class="missing">&mdash;</td>'
  parts = [f'<audio controls preload="none" src="{_href(cell.audio)}"></audio>']
  if cell.image:
    alt = html.escape(f'gains of {column}', quote=True)
    parts.append(f'<a href="{_href(cell.image)}"><img class="gains" src="{_href(cell.image)}" '
                 f'alt="{alt}" loading="lazy"></a>')
  if cell.pan_image:
    alt = html.escape(f'pans of {column}', quote=True)
    parts.append(f'<a href="{_href(cell.pan_image)}"><img class="gains" '
                 f'src="{_href(cell.pan_image)}" alt="{alt}" loading="lazy"></a>')
  if cell.caption:
    parts.append(f'<div class="caption">{html.escape(cell.caption)}</div>')
  return '<td>' + ''.join(parts) + '</td>'


def render(title: str, columns: Sequence[str], rows: Sequence[Row], *,
           notes: Sequence[str] = (), systems: Sequence[Sequence[str]] = (),
           systems_header: Sequence[str] = ()) -> str:
  """The page as an HTML5 string.

  Args:
    title: page title and heading.
    columns: one name per system column (e.g. 'TARGET', 'RAW', then the checkpoints).
    rows: the segments; each row has exactly len(columns) cells.
    notes: paragraphs of plain text shown under the heading.
    systems: optional table describing the systems (one row of plain-text fields each).
    systems_header: the header of that table.
  """
  esc = html.escape
  out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
         f'<title>{esc(title)}</title>', f'<style>{_STYLE}</style>', '</head>', '<body>',
         f'<h1>{esc(title)}</h1>']
  out += [f'<p class="note">{esc(n)}</p>' for n in notes]
  if systems:
    out.append('<table class="systems">')
    if systems_header:
      out.append('<thead><tr>' + ''.join(f'<th>{esc(h)}</th>' for h in systems_header)
                 + '</tr></thead>')
    out.append('<tbody>')
    for fields in systems:
      out.append('<tr>' + ''.join(f'<td>{esc(str(v))}</td>' for v in fields) + '</tr>')
    out.append('</tbody></table>')
  out.append('<table class="listening">')
  out.append('<thead><tr><th>Song segment</th>' + ''.join(f'<th>{esc(c)}</th>' for c in columns)
             + '</tr></thead>')
  out.append('<tbody>')
  for row in rows:
    if len(row.cells) != len(columns):
      raise ValueError(f'Row {row.title!r} has {len(row.cells)} cells for {len(columns)} columns.')
    details = ''.join(f'<div class="details">{esc(d)}</div>' for d in row.details)
    out.append(f'<tr><td class="song"><b>{esc(row.title)}</b>{details}</td>'
               + ''.join(_cell_html(cell, col) for cell, col in zip(row.cells, columns)) + '</tr>')
  out.append('</tbody></table>')
  out += ['</body>', '</html>', '']
  return '\n'.join(out)


class _LinkCollector(html.parser.HTMLParser):
  """Collects src/href values (decoded back to file paths)."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.links = []

  def handle_starttag(self, tag, attrs):
    for name, value in attrs:
      if name in ('src', 'href') and value:
        self.links.append(urllib.parse.unquote(value))


def referenced_files(page: str) -> list[str]:
  """Every src/href of `page`, as paths relative to the page's folder."""
  collector = _LinkCollector()
  collector.feed(page)
  collector.close()
  return collector.links


def write(path, page: str) -> str:
  """Writes `page` to `path` after checking every file it links to exists next to it.

  Raises:
    FileNotFoundError: naming the missing files (a page with dead players is a bug, not output).
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  missing = [p for p in referenced_files(page) if not os.path.isfile(os.path.join(folder, p))]
  if missing:
    shown = ', '.join(missing[:5]) + (f' (and {len(missing) - 5} more)' if len(missing) > 5 else '')
    raise FileNotFoundError(f'The listening page {path} would link to missing files: {shown}.')
  outputs.atomic_write_text(path, page)
  return path


def write_wav(path, audio, rate: int):
  """A page's audio file: 16-bit PCM, which every browser plays.

  Like a desk's output it clips at full scale (metrics use the unclipped float mix).
  """
  audio_io.write_wav(path, np.clip(audio, -1.0, 1.0), rate, subtype='PCM_16')
