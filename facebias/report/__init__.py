"""The results table of a sweep: table (pure pandas), significance, Markdown/HTML, plot, and the CLI."""
