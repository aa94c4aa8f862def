"""``stream-scorer model``: keys and signatures, and the registry (list, show, promote, rollback)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stream_scorer.config import Settings, resolve_secret
from stream_scorer.errors import ConfigError
from stream_scorer.model import artifact, signing
from stream_scorer.model.multinomial import load_multinomial
from stream_scorer.model.registry import Registry, is_registry


def add_model_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``model keygen|sign|list|show|promote|rollback``."""
    model = commands.add_parser("model", help="model keys, signatures and the registry")
    model_commands = model.add_subparsers(title="model commands")
    keygen = model_commands.add_parser(
        "keygen", parents=[common], help="write a new Ed25519 key pair (private.pem, public.pem) into a directory"
    )
    keygen.add_argument("--out", type=Path, required=True)
    keygen.set_defaults(handler=_keygen)
    sign = model_commands.add_parser("sign", parents=[common], help="sign an artifact (writes its SIGNATURE file)")
    sign.add_argument("artifact", type=Path)
    sign.add_argument("--key", required=True, help='the private key as "env:NAME" or "file:/path"')
    sign.set_defaults(handler=_sign)

    registry = argparse.ArgumentParser(add_help=False, parents=[common])
    registry.add_argument(
        "--registry", type=Path, default=None, help="registry directory (default: settings model_path)"
    )
    listing = model_commands.add_parser("list", parents=[registry], help="registered versions; * marks CURRENT")
    listing.set_defaults(handler=_list)
    show = model_commands.add_parser("show", parents=[registry], help="one version's manifest (default: CURRENT)")
    show.add_argument("version", type=int, nargs="?")
    show.set_defaults(handler=_show)
    promote = model_commands.add_parser(
        "promote", parents=[registry], help="serve a newer version: workers switch at their next batch"
    )
    promote.add_argument("version", type=int)
    promote.set_defaults(handler=_promote)
    rollback = model_commands.add_parser(
        "rollback", parents=[registry], help="serve an older version (default: the one served before CURRENT)"
    )
    rollback.add_argument("version", type=int, nargs="?")
    rollback.set_defaults(handler=_rollback)


def open_registry(path: Path | None, settings: Settings) -> Registry:
    """The registry at ``path``, or at ``model_path`` when that is one."""
    from stream_scorer.wiring import model_loader

    root = path or settings.model_path
    if path is None and not is_registry(root):
        raise ConfigError(f"model_path {root} is not a registry; pass --registry DIR")
    return Registry(root, verify=model_loader(settings))  # promote checks what the workers check


def _list(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(args.registry, settings)
    print(f"  {'version':>7s}  {'name':12s} {'created':25s} {'auc':>6s}  sha256")
    for info in registry.describe():
        auc = info.metrics.get("validation", {}).get("auc", float("nan"))
        mark = "*" if info.current else " "
        print(f"{mark} {info.version:7d}  {info.name:12s} {info.created_at:25s} {auc:6.3f}  {info.checksum[:12]}")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(args.registry, settings)
    path = registry.path(args.version) if args.version is not None else registry.current_path()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.pop("golden_vectors", None)
    manifest.pop("baselines", None)
    print(json.dumps({"path": str(path), "sha256": (path / "CHECKSUM").read_text().strip(), **manifest}, indent=2))
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(args.registry, settings)
    previous = registry.current()
    registry.promote(args.version)
    print(f"CURRENT: {previous} -> {args.version}")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(args.registry, settings)
    previous = registry.current()
    version = registry.rollback(args.version)
    print(f"CURRENT: {previous} -> {version} (rollback)")
    return 0


def _keygen(args: argparse.Namespace, settings: Settings) -> int:
    private_pem, public_pem = signing.generate_keypair()
    args.out.mkdir(parents=True, exist_ok=True)
    private = args.out / "private.pem"
    private.touch(mode=0o600)
    private.write_bytes(private_pem)
    (args.out / "public.pem").write_bytes(public_pem)
    print(f"wrote {private} (keep it secret) and {args.out / 'public.pem'}")
    return 0


def _sign(args: argparse.Namespace, settings: Settings) -> int:
    load = load_multinomial if artifact.kind_of(args.artifact) == artifact.MULTINOMIAL else artifact.load
    load(args.artifact)  # only a complete, consistent artifact is signed, of either kind
    signing.sign(args.artifact, resolve_secret(args.key, "--key").encode())
    print(f"signed {args.artifact}")
    return 0
