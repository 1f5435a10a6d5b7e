"""The trust commands: co-sign a report; pack, sign and verify suites. A thin shell, like cli.py.

Kept apart from cli.py so the trust chain's commands can be read in one sitting; `register` adds
them to cli.py's app and its `suite` group. Imports happen inside each command (cli.py's helpers
too), so registering costs nothing and cli.py may import this module at any point.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from evalkit.errors import ConfigError


def sign(
    out_dir: Path = typer.Argument(..., help="The report folder (the --out of a run) holding report.dsse.json."),
    key: Path = typer.Option(..., "--key", help="Your private key file; its signature is added beside the existing ones."),
    passphrase_env: Optional[str] = typer.Option(None, "--passphrase-env", help="Environment variable holding the key's passphrase (default: $EVALKIT_KEY_PASSPHRASE, else a prompt)."),
) -> None:
    """Co-sign a signed report: add your signature to its envelope (vendor and partner on one report)."""
    from evalkit.cli import _passphrase, out
    from evalkit.cosign import cosign_report
    from evalkit.trust import load_signing_key, read_envelope

    keyid = cosign_report(out_dir, load_signing_key(key, _passphrase(key, passphrase_env)))
    envelope = out_dir / "report.dsse.json"
    count = len(read_envelope(envelope)["signatures"])
    out.print(f"co-signed by key {keyid[:16]}… -> {envelope} ({count} signatures)")
    out.print(f"check it with: evalkit verify {out_dir} --pub FIRST.pub --pub YOURS.pub --threshold {count}")


def suite_pack(
    folder: Path = typer.Argument(..., help="A suite folder holding suite.yaml."),
    out_file: Path = typer.Option(..., "--out", help="The pack to write (NAME.evalkit-pack); never overwritten."),
) -> None:
    """Validate a suite and write it as one deterministic pack file (same suite, same bytes)."""
    from evalkit.cli import out
    from evalkit.suite.pack import PACK_SUFFIXES, pack_suite

    if not out_file.name.endswith(PACK_SUFFIXES):
        raise ConfigError(
            f"--out {out_file} must end with {' or '.join(PACK_SUFFIXES)}, so that `evalkit run --suite` "
            "knows it is a pack"
        )
    info = pack_suite(folder, out_file)
    out.print(f"packed {info.suite} {info.version} ({len(info.files)} files, suite digest {info.suite_digest})")
    out.print(f"{out_file}: sha256 {info.sha256}")


def suite_sign(
    pack: Path = typer.Argument(..., help="The pack file (from `evalkit suite pack`)."),
    key: Path = typer.Option(..., "--key", help="Private key file; a second signer adds to the existing signature file."),
    passphrase_env: Optional[str] = typer.Option(None, "--passphrase-env", help="Environment variable holding the key's passphrase (default: $EVALKIT_KEY_PASSPHRASE, else a prompt)."),
) -> None:
    """Sign a suite pack into PACK.dsse.json (or add your signature to it)."""
    from evalkit.cli import _passphrase, out
    from evalkit.suite.pack import sign_pack
    from evalkit.trust import load_signing_key, read_envelope

    signing_key = load_signing_key(key, _passphrase(key, passphrase_env))
    sig_path = sign_pack(pack, signing_key)
    count = len(read_envelope(sig_path)["signatures"])
    out.print(f"signed by key {signing_key.keyid[:16]}… -> {sig_path} ({count} signature(s))")


def suite_verify(
    pack: Path = typer.Argument(..., help="The pack file; its signature is read from PACK.dsse.json."),
    pub: List[Path] = typer.Option(..., "--pub", help="Trusted public key file; repeat for several."),
    threshold: int = typer.Option(1, "--threshold", min=1, help="How many distinct trusted keys must have signed."),
) -> None:
    """Check a pack's signature, its sha256 and every file in it; exit 0 only if all hold."""
    from evalkit.cli import out
    from evalkit.suite.pack import verify_pack
    from evalkit.trust import load_verify_key

    info = verify_pack(pack, [load_verify_key(p) for p in pub], threshold)
    signers = ", ".join(keyid[:16] + "…" for keyid in info.signed_by)
    out.print(
        f"verified: {pack.name} (sha256 {info.sha256}) holds suite {info.suite} {info.version}, "
        f"{len(info.files)} files match pack.json; signed by {len(info.signed_by)} trusted key(s): {signers}",
        soft_wrap=True,
    )


def register(app: typer.Typer, suite_app: typer.Typer) -> None:
    """Add `sign` to `app` and `pack`, `sign`, `verify` to its `suite` group."""
    app.command("sign")(sign)
    suite_app.command("pack")(suite_pack)
    suite_app.command("sign")(suite_sign)
    suite_app.command("verify")(suite_verify)
