"""The Invoke layer: thin tasks that parse options, call one core function and print.

The core never imports invoke; only this package prints (rich console, progress, summaries).
``tasks.py`` at the project root composes these modules into the ``invoke`` namespace.
"""
