"""``genre-cnn serve``: an HTTP API and a web page in front of a trained model.

    from genre_cnn.serving import ServerConfig, create_app, serve
    serve(ServerConfig(model="models/latest"), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from genre_cnn.errors import ConfigError
from genre_cnn.serving.app import ServerConfig, create_app, log_record

__all__ = ["ServerConfig", "create_app", "log_record", "serve", "GRACEFUL_SHUTDOWN_SECONDS"]

#: After SIGTERM or Ctrl-C, how long the server lets requests still being uploaded or answered finish.
#: Songs being classified do not wait: they are answered 503 (retry) at once.
GRACEFUL_SHUTDOWN_SECONDS = 10


def serve(config: ServerConfig = ServerConfig(), *, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    """Open the model and answer HTTP requests on ``host:port`` until interrupted (uvicorn).

    Raises
    ------
    ModelError, ConfigError
        The model cannot be opened, or an option is wrong: before anything listens.
    """
    import uvicorn

    _check_port(host, port)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
    stop_accepting = server.handle_exit

    def handle_exit(sig, frame) -> None:  # SIGTERM, Ctrl-C: songs in progress are answered 503 at once
        app.state.pool.begin_shutdown()
        stop_accepting(sig, frame)

    server.handle_exit = handle_exit
    server.run()


def _check_port(host: str, port: int) -> None:
    """Fail with the option to change when the address is taken or cannot be had."""
    import socket


    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"host={host}: not an address of this machine ({exc.strerror}); "
                          "use 127.0.0.1 or 0.0.0.0") from None
    family, kind, _, _, address = infos[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"port={port}: cannot listen on {host}:{port} ({exc.strerror}); "
                              "choose another port") from None
