"""The static leaderboard: `publish(results_dir, site_dir)` writes SITE_DIR/index.html.

One self-contained page (inline CSS, inline SVG plots made by matplotlib, a few lines of vanilla
JS for sortable tables and device tabs): it works offline, from a file:// URL. A leaderboard
whose plots would pass 4 MiB (10,000 runs) gets one such page per problem for its plots,
linked from index.html, which keeps the scores, profiles and every table.
"""
from .render import DEFAULT_TITLE, publish, render_site

__all__ = ["DEFAULT_TITLE", "publish", "render_site"]
