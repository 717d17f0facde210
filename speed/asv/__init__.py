"""asv benchmarks of benchopt-bilevel (see benchmarks.py and asv.conf.json)."""
