#!/usr/bin/env python3
"""Rewrites the README's table of contents (between <!-- toc --> and <!-- /toc -->) from its ## and ### headings."""
import re, sys
path = sys.argv[1] if len(sys.argv) > 1 else 'README.md'
text = open(path, encoding='utf-8').read()
body = text.split('<!-- /toc -->', 1)[-1]
lines, in_code = [], False
for line in body.split('\n'):
    if line.startswith('```'):
        in_code = not in_code
    m = None if in_code else re.match(r'^(##|###) (.+)$', line)
    if m:
        anchor = re.sub(r'[^\w\- ]', '', m.group(2).lower()).replace(' ', '-')
        lines.append(f"{'  ' if m.group(1) == '###' else ''}- [{m.group(2)}](#{anchor})")
toc = '<!-- toc -->\n' + '\n'.join(lines) + '\n<!-- /toc -->'
if '<!-- toc -->' in text:
    text = re.sub(r'<!-- toc -->.*?<!-- /toc -->', lambda _: toc, text, flags=re.S)
else:
    text = text.replace('\n## Quick start', '\n' + toc + '\n\n## Quick start', 1)
open(path, 'w', encoding='utf-8').write(text)
