"""The command lines (front ends above the library packages): ``python -m cli.explain``,
``python -m cli.shapes``, ``python -m cli.evaluate`` (``./studio cli|shapes|eval``)."""
