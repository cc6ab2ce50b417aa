"""The verify gate: every image checked from outside against its expectations.

``expectations`` (the data), ``patterns`` (what a secret looks like), ``layers`` (docker save,
layer by layer), ``live`` (the running container and its helper), ``checks`` (one function per
check), ``run`` (one image, every check), ``junit`` (the JUnit XML), ``cst`` (the
container-structure-test cross-check). The stage is :mod:`mt5forge.stages.verify`.
"""
