"""`python -m benchopt_bilevel`: the command line, as `benchopt-bilevel` (under the preferred
memory allocator, `allocator.py`)."""
from .launch import main

main()
