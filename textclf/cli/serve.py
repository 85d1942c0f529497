"""`textclf serve RUN`: an HTTP JSON API on a loaded run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import RUN_HELP, err, one_run

app = typer.Typer()  # registered by textclf.cli


@app.command("serve")
def serve(
    run_ref: Annotated[Optional[str], typer.Argument(help=RUN_HELP, show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option(help="The run (instead of the argument).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8501,
    max_batch: Annotated[int, typer.Option(help="Most texts run through the model at once.", min=1)] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="How long a request waits for others to batch with.", min=0,
                                               max=10_000)]
    = 5.0,
    name: Annotated[Optional[str], typer.Option(
        help="Model name in /v1/models/NAME:predict (default: the run's model).")] = None,
    runs_root: Annotated[str, typer.Option(help="Where to look for the latest run.")] = "runs",
) -> None:
    """Serve a run over HTTP: POST /v1/models/NAME:predict (TF Serving's REST shape), POST /predict, GET /health.

    Concurrent requests are batched; bad requests get a 4xx JSON error; SIGTERM or Ctrl-C stops it cleanly.
    """
    from textclf.runs import resolve_run
    from textclf.serving import serve as run_server

    path = resolve_run(one_run(run_ref, run), runs_root)
    run_server(path, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, name=name,
               ready=lambda url: (err.print(f"serving {path} on {url} (POST /predict, "
                                            "/v1/models/NAME:predict; GET /health)", highlight=False),
                                  err.file.flush()))
