"""Fleet reports for cron: one status run turned into an HTML page, JSON, CSV or Markdown.

    slices.py    which hosts one controller covers (pure)
    trends.py    memory and restart trends from past runs (pure)
    model.py     the report: build it from host results, to and from JSON, merge (pure)
    formats.py   JSON, CSV and Markdown text (pure)
    html.py      the self-contained HTML page (Jinja2, autoescaped)
    history.py   the SQLite history of runs (WAL, migrations, pruning)
    atomic.py    write a file so a reader never sees half of it
    (the command itself, running the fleet and writing the report, is fleet/commands/report.py)
"""
