"""Tests for alm_jax/evaluation/listening_page.py: well-formed HTML with live relative links."""

import html.parser
import os
import urllib.parse

import pytest

from alm_jax.evaluation import listening_page


class StrictHTML(html.parser.HTMLParser):
  """Checks nesting (every non-void element closed in order) and collects links."""
  VOID = {'meta', 'br', 'img', 'link', 'input', 'source', 'hr'}

  def __init__(self):
    super().__init__()
    self.stack, self.links, self.errors, self.tags = [], [], [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    if tag not in self.VOID:
      self.stack.append(tag)
    # As a browser resolves them from disk: percent-decoded paths.
    self.links += [urllib.parse.unquote(v) for k, v in attrs if k in ('src', 'href')]

  def handle_endtag(self, tag):
    if not self.stack or self.stack.pop() != tag:
      self.errors.append(f'unexpected </{tag}>')


def check_page(path):
  """Parses the page; returns its parser after checking it is well formed with live links."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  assert text.startswith('<!DOCTYPE html>')
  parser = StrictHTML()
  parser.feed(text)
  parser.close()
  assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
  folder = os.path.dirname(path)
  for link in parser.links:
    assert not os.path.isabs(link) and '://' not in link, link
    assert os.path.isfile(os.path.join(folder, link)), f'dead link {link}'
  return parser


def test_listening_page_writes_only_live_relative_links(tmp_path):
  (tmp_path / 'a b').mkdir()
  (tmp_path / 'a b' / 'x.wav').write_bytes(b'RIFF')
  rows = [listening_page.Row('song <1>', ['segment 0'],
                             [listening_page.Cell('a b/x.wav'), None])]
  page = listening_page.render('T & t', ['TARGET', 'RAW'], rows, notes=['it\'s "fine"'])
  path = listening_page.write(tmp_path / 'index.html', page)
  parser = check_page(path)
  assert parser.tags.count('audio') == 1 and 'song &lt;1&gt;' in page
  # A stereo mixer's cell: its stereo-image plot under the gains, checked like every link.
  (tmp_path / 'p.png').write_bytes(b'PNG')
  cell = listening_page.Cell('a b/x.wav', image='p.png', pan_image='p.png')
  page = listening_page.render('t', ['ST'], [listening_page.Row('s', [], [cell])])
  assert check_page(listening_page.write(tmp_path / 'st.html', page)).tags.count('img') == 2
  assert 'alt="pans of ST"' in page
  with pytest.raises(FileNotFoundError, match='gone.png'):
    listening_page.write(tmp_path / 'x.html', listening_page.render('t', ['ST'], [
        listening_page.Row('s', [], [listening_page.Cell('a b/x.wav', pan_image='gone.png')])]))
  with pytest.raises(FileNotFoundError, match='missing.wav'):
    listening_page.write(tmp_path / 'other.html', listening_page.render(
        't', ['A'], [listening_page.Row('s', [], [listening_page.Cell('missing.wav')])]))
  with pytest.raises(ValueError, match='relative'):
    listening_page.render('t', ['A'], [listening_page.Row('s', [], [listening_page.Cell('/abs.wav')])])
