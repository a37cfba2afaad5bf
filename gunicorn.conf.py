"""gunicorn settings for serving functions-framework's app (`make run`, the image).

  gunicorn -c gunicorn.conf.py 'functions_framework:create_app(target="handle", source="main.py")'

functions-framework's own CLI runs the same app under gunicorn but with an
unlimited request line and no graceful-shutdown hook; these settings add:
- bounded request lines and headers (a 16 MB request line costs minutes of CPU);
- gunicorn's gthread worker, but answering the requests gunicorn refuses itself
  (a malformed request line or header, 414, 431, ...) with JSON of the error
  schema instead of HTML (pyexec/gunicorn_worker.py);
- threads = the admitted scripts + those waiting for a slot + 128 more, so that
  requests past both reach the admission check and get a quick 503 instead of
  queueing unseen inside gunicorn; a slow client holds a thread only until its
  body's or its answer's deadline (PYEXEC_BODY_TIMEOUT and PYEXEC_BODY_MIN_RATE,
  pyexec/bodylimit.py) or its head's (pyexec/gunicorn_worker.py), while /healthz
  still finds one;
- on SIGTERM (Cloud Run's signal): stop accepting, let running scripts finish
  within PYEXEC_SHUTDOWN_GRACE, then stop the rest (their requests get 503
  shutting_down) and kill every jail, before gunicorn's own deadline;
- the app is imported in the worker (no preload), and the sandbox self-test
  starts as soon as the worker is up (post_worker_init).
"""

import gc
import math
import os
import signal
import sys
from typing import Any

from pyexec.settings import load_settings

_settings = load_settings()

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"  # noqa: S104
workers = 1
# gthread, with gunicorn's own error answers in JSON (pyexec/gunicorn_worker.py).
worker_class = "pyexec.gunicorn_worker.JsonThreadWorker"
threads = _settings.max_concurrent + _settings.max_queue + 128
timeout = 0
# The worker stops scripts that outlive PYEXEC_SHUTDOWN_GRACE itself (and answers
# them 503); gunicorn's own deadline comes 2 s later. Cloud Run kills 10 s after
# SIGTERM: the default grace (8 s) fits.
graceful_timeout = math.ceil(_settings.shutdown_grace_seconds) + 2
keepalive = 5
limit_request_line = 8190
limit_request_fields = 64
limit_request_field_size = 8190
loglevel = "warning"
accesslog = None  # pyexec writes one structured line per request itself


def _service() -> Any:
    main = sys.modules.get("main")
    return getattr(main, "SERVICE", None)


def post_worker_init(worker: Any) -> None:
    """Start the self-test (then the pool) right away in the serving process, and on
    SIGTERM stop taking scripts and warming jails before gunicorn drains requests."""
    service = _service()
    if service is None:
        return
    # What exists now (the app, its schemas and settings) lives as long as the
    # worker: out of the garbage collector's walks from here on.
    gc.freeze()
    service.warm_up()
    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        service.executor.begin_shutdown()
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def worker_exit(server: Any, worker: Any) -> None:
    """The worker is exiting: make sure every jail is killed and reaped (waits for a
    shutdown that SIGTERM began)."""
    service = _service()
    if service is not None:
        service.executor.shutdown(grace_seconds=0)
