"""``invoke watch``."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from invoke.context import Context
from invoke.tasks import task
from mt5bridge.redact import Redactor

from mt5forge.alerts import Alert, deliver, log_alert, parse_targets
from mt5forge.monitor import make_watcher, selector
from mt5forge.tasks._common import console, err_console, task_context
from mt5forge.tools import docker as dockertool


@task(
    help={
        "pair": "Watch one pair only: the compose project NAME (docker-compose -p NAME).",
        "dry_run": "Print each alert and the targets it would go to; send nothing.",
        "duration": "Stop after this many seconds (default 0: until stopped).",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def watch(
    c: Context,
    pair: str | None = None,
    dry_run: bool = False,
    duration: int = 0,
    verbose: bool = False,
) -> None:
    """Follow the project's containers and alert on a crash (non-zero exit, OOM kill), a restart
    loop (the terminal supervisor's rule), a health check turning unhealthy, and CPU or memory
    above [watch]'s thresholds for its period. Alerts go to the log (one JSON line each) and to
    [watch] targets through Apprise; secrets come from the environment (${NAME})."""
    with task_context(verbose) as settings:
        targets = parse_targets(settings.watch.targets, os.environ)
        secrets = [s for t in targets for s in t.secrets]
        redactor = Redactor(secrets)
        client = dockertool.connect()

        def on_alert(alert: Alert) -> None:
            line = log_alert(alert)
            if dry_run:
                # Plain text, unwrapped: a URL or a log line folded by the console is not the
                # one that would be sent.
                shown = [t.shown for t in targets] or ["no target ([watch] targets is empty)"]
                text = f"would send {alert.title}\n{alert.body}\n"
                console.file.write(text + "".join(f"  to {t}\n" for t in shown))
                console.file.flush()
                return
            console.file.write(line + "\n")
            console.file.flush()
            for d in deliver(alert, targets, redactor):
                if not d.ok:
                    err_console.print(f"not delivered to {d.target}: {d.note}", markup=False)

        watcher = make_watcher(
            settings, client, pair=pair, on_alert=on_alert, extra_secrets=secrets
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            watcher.stop.set()

        signal.signal(signal.SIGTERM, stop)
        if duration > 0:
            timer = threading.Timer(duration, watcher.stop.set)
            timer.daemon = True
            timer.start()
        what = selector(pair, settings.watch.label)
        err_console.print(
            f"watching containers labelled {what}; {len(targets)} target(s)"
            + (" (dry run: nothing is sent)" if dry_run else ""),
            markup=False,
            soft_wrap=True,  # one line, as scripts and tests read it
        )
        watcher.run()
