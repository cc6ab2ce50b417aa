"""Thin typed wrappers around external programs and services (docker, gpg, trivy, http).

Every external program is started through :func:`mt5forge.tools.run.call`: an argument list (no
shell), a timeout, and an error that says how to install what is missing.
"""
