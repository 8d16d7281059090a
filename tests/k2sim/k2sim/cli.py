"""Command line: k2sim serve --data-dir DIR --array NAME@HOST:PORT [...] [--user USER:PASSWORD[:ROLE] ...]
[--admin HOST:PORT] [--cert FILE --key FILE]"""

import argparse
import asyncio
import logging
import os
import re
import sys

from k2sim import __version__

ROLES = ("admin", "read_only")


def _hostport(text, what):
    m = re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\[\]]+):(\d+)$", text)
    if not m:
        raise argparse.ArgumentTypeError("%s must be HOST:PORT (port 0 picks a free port), got %r" % (what, text))
    host, port = m.group(1).strip("[]"), int(m.group(2))
    if port > 65535:
        raise argparse.ArgumentTypeError("port %d is out of range in %r" % (port, text))
    return host, port


def parse_array(text):
    name, sep, rest = text.partition("@")
    if not sep or not re.match(r"^[A-Za-z0-9_.\-]{1,42}$", name):
        raise argparse.ArgumentTypeError("--array must be NAME@HOST:PORT with NAME made of A-Z a-z 0-9 _ . - (got %r)" % text)
    host, port = _hostport(rest, "--array")
    return name, host, port


def parse_user(text):
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("--user must be USER:PASSWORD or USER:PASSWORD:ROLE (got a value with %d parts)" % len(parts))
    role = parts[2] if len(parts) == 3 else "admin"
    if role not in ROLES:
        raise argparse.ArgumentTypeError("--user role must be one of %s, got %r" % (", ".join(ROLES), role))
    return parts[0], parts[1], role


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % text)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected a number between 0 and 3600, got %r" % text)
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="k2sim", description="Stateful simulator of the Kaminario K2 REST API v2.")
    parser.add_argument("--version", action="version", version="k2sim %s" % __version__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve one or more simulated arrays until SIGTERM or SIGINT")
    serve.add_argument("--data-dir", required=True, help="state directory; one sub-directory per array, reused on restart")
    serve.add_argument("--array", action="append", required=True, type=parse_array, metavar="NAME@HOST:PORT",
                       help="an array listening on HTTPS at HOST:PORT (repeatable; port 0 picks a free port)")
    serve.add_argument("--user", action="append", type=parse_user, metavar="USER:PASSWORD[:ROLE]",
                       help="a REST user, role admin (default) or read_only (repeatable; default admin:admin)")
    serve.add_argument("--admin", type=lambda t: _hostport(t, "--admin"), metavar="HOST:PORT",
                       help="plain-HTTP admin API address (faults, request log, backing files)")
    serve.add_argument("--cert", help="server certificate (PEM); default: generated under DATA_DIR/tls")
    serve.add_argument("--key", help="private key of --cert (PEM)")
    serve.add_argument("--replication-delay", type=_seconds, default=0.5, metavar="SECONDS",
                       help="how long a session state change takes to show on the peer session (default 0.5)")
    serve.add_argument("--replication-transfer", type=_seconds, default=0.5, metavar="SECONDS",
                       help="how long one replication cycle (snapshot transfer) takes (default 0.5)")
    serve.add_argument("--rpo-scale", type=_seconds, default=1.0, metavar="FACTOR",
                       help="RPO cycles run every rpo*FACTOR seconds; 0 turns automatic RPO cycles off (default 1)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help(sys.stderr)
        return 2
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    names = [a[0] for a in args.array]
    if len(set(names)) != len(names):
        parser.error("array names must be unique, got %s" % ", ".join(names))
    users = {}
    for user, password, role in args.user or [("admin", "admin", "admin")]:
        users[user] = (password, role)
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("K2SIM_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s k2sim %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        # uvicorn reports open keep-alive connections at shutdown as errors; they are normal here.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    from k2sim.server import serve
    from k2sim.replication import ReplicationSettings
    settings = ReplicationSettings(args.replication_delay, args.replication_transfer, args.rpo_scale)
    try:
        return asyncio.run(serve(os.path.abspath(args.data_dir), args.array, users, args.admin, args.cert, args.key, settings))
    except OSError as err:
        sys.stderr.write("k2sim: cannot start: %s\n" % err)
        return 1
