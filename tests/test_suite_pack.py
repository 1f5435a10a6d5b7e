"""Signed suite packs: deterministic bytes, signatures and co-signatures, and every tamper refused.

Each test builds a tiny suite in a temporary folder and packs it; tampered packs are rebuilt
member by member with tarfile, so each test damages exactly one thing and checks the message names it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evalkit.cli_trust import register
from evalkit.errors import ConfigError, KeyFileError, SuiteError, VerificationError
from evalkit.suite import load_suite
from evalkit.suite.loader import suite_digest
from evalkit.suite.pack import (
    PackLimits,
    load_suite_ref,
    pack_suite,
    sign_pack,
    signature_path,
    unpack_pack,
    verify_pack,
)
from evalkit.suite.records import DataFileDigest
from evalkit.trust import (
    SigningKey,
    VerifyKey,
    generate_keypair,
    load_signing_key,
    load_verify_key,
)

TEST_CSV = "question,a,b,answer\nWhat is 1+1?,2,3,0\nWhat is 2+2?,5,4,1\n"
SUITE_YAML = """\
format: evalkit.suite/v1
name: tiny
version: 1.2.0
description: a tiny multiple-choice suite
license: CC0-1.0
citation: none
kind: multiple_choice
data:
  - {path: data/test.csv, sha256: SHA, split: test}
prompt: {template: "{question}\\nA. {a}\\nB. {b}\\nAnswer:"}
choices: {static: [" A", " B"]}
target: {field: answer, type: index}
scorer: choice_loglikelihood
metrics: [{name: accuracy, value: correct}]
"""
MEMBER = "suite/data/test.csv"


def write_suite(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "test.csv").write_text(TEST_CSV, encoding="utf-8")
    (root / "LICENSE").write_text("CC0 1.0 Universal\n", encoding="utf-8")
    sha = hashlib.sha256(TEST_CSV.encode()).hexdigest()
    (root / "suite.yaml").write_text(SUITE_YAML.replace("SHA", sha), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("src") / "tiny")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder, "body")
    generate_keypair(folder, "second", algorithm="ecdsa-p256")
    generate_keypair(folder, "stranger")
    return {name: folder / name for name in ("body", "second", "stranger")}


def private(keys: dict[str, Path], name: str) -> SigningKey:
    return load_signing_key(keys[name].with_suffix(".key"))


def public(keys: dict[str, Path], name: str) -> VerifyKey:
    return load_verify_key(keys[name].with_suffix(".pub"))


@pytest.fixture
def pack(suite_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.evalkit-pack"
    pack_suite(suite_dir, path)
    return path


# --- building tampered packs ---------------------------------------------------------------------

Members = list[tuple[tarfile.TarInfo, bytes]]


def read_members(pack: Path) -> Members:
    with tarfile.open(pack, "r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]  # type: ignore[union-attr]


def info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.type, member.mode = size, kind, 0o644
    return member


def write_members(path: Path, members: Members) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return path


def tamper(pack: Path, edit: Callable[[Members], Members]) -> Path:
    """Rewrite `pack` in place with its members edited (its signature file is left as it was)."""
    return write_members(pack, edit(read_members(pack)))


def manifest_of(members: Members) -> dict:
    return json.loads(members[0][1])


def with_manifest(members: Members, manifest: dict) -> Members:
    data = json.dumps(manifest).encode()
    return [(info("pack.json", len(data)), data)] + members[1:]


def replace_member(members: Members, name: str, data: bytes) -> Members:
    return [(info(m.name, len(data)), data) if m.name == name else (m, d) for m, d in members]


def no_leftovers(folder: Path) -> bool:
    return not any(p.name.endswith(".unpacking") for p in folder.iterdir())


# --- packing --------------------------------------------------------------------------------------


def test_packing_twice_gives_the_same_bytes(suite_dir: Path, tmp_path: Path) -> None:
    first = pack_suite(suite_dir, tmp_path / "a.evalkit-pack")
    second = pack_suite(suite_dir, tmp_path / "b.evalkit-pack")
    assert first.sha256 == second.sha256 == hashlib.sha256((tmp_path / "a.evalkit-pack").read_bytes()).hexdigest()
    assert (tmp_path / "a.evalkit-pack").read_bytes() == (tmp_path / "b.evalkit-pack").read_bytes()


def test_pack_holds_the_manifest_first_then_sorted_files_with_fixed_headers(suite_dir: Path, pack: Path) -> None:
    members = read_members(pack)
    assert [m.name for m, _ in members] == ["pack.json", "suite/LICENSE", MEMBER, "suite/suite.yaml"]
    assert all((m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644) for m, _ in members)
    manifest = manifest_of(members)
    suite = load_suite(suite_dir)
    assert manifest["format"] == "evalkit.suite-pack/v1"
    assert (manifest["suite"], manifest["version"], manifest["suite_digest"]) == ("tiny", "1.2.0", suite.digest)
    assert manifest["files"] == [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in suite.files]


def test_pack_refuses_an_invalid_suite_an_existing_file_and_a_folder_inside(suite_dir: Path, tmp_path: Path) -> None:
    broken = write_suite(tmp_path / "broken")
    (broken / "data" / "test.csv").write_text(TEST_CSV + "What?,1,2,0\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="data changed since the suite was locked"):
        pack_suite(broken, tmp_path / "broken.evalkit-pack")
    assert not (tmp_path / "broken.evalkit-pack").exists()
    (tmp_path / "taken.evalkit-pack").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already exists"):
        pack_suite(suite_dir, tmp_path / "taken.evalkit-pack")
    with pytest.raises(ConfigError, match="inside the suite folder"):
        pack_suite(suite_dir, suite_dir / "self.evalkit-pack")


def test_unpacked_suite_loads_with_the_original_digest(suite_dir: Path, pack: Path, tmp_path: Path) -> None:
    folder = unpack_pack(pack, tmp_path / "out")
    assert folder == tmp_path / "out" / "suite"
    assert load_suite(folder).digest == load_suite(suite_dir).digest
    with pytest.raises(ConfigError, match="already exists; unpack into a new folder"):
        unpack_pack(pack, tmp_path / "out")


# --- signing and verifying ------------------------------------------------------------------------


def test_signed_pack_verifies_and_names_its_signer(pack: Path, keys: dict[str, Path]) -> None:
    sig = sign_pack(pack, private(keys, "body"))
    assert sig == signature_path(pack) and sig.name == "tiny.evalkit-pack.dsse.json"
    checked = verify_pack(pack, [public(keys, "body")])
    assert checked.signed_by == (public(keys, "body").keyid,)
    assert checked.suite == "tiny" and checked.version == "1.2.0"


def test_co_signed_pack_meets_a_threshold_of_two_with_ed25519_and_ecdsa(pack: Path, keys: dict[str, Path]) -> None:
    sign_pack(pack, private(keys, "body"))
    sign_pack(pack, private(keys, "second"))  # ECDSA P-256 beside Ed25519
    both = [public(keys, "body"), public(keys, "second")]
    assert set(verify_pack(pack, both, threshold=2).signed_by) == {k.keyid for k in both}
    with pytest.raises(VerificationError, match="2 valid signatures are required but only 1"):
        verify_pack(pack, both[:1], threshold=2)
    with pytest.raises(VerificationError, match="1 of 2 required trusted keys signed"):
        verify_pack(pack, [public(keys, "body"), public(keys, "stranger")], threshold=2)
    with pytest.raises(KeyFileError, match="already signed"):
        sign_pack(pack, private(keys, "second"))


def test_unsigned_pack_does_not_verify(pack: Path, keys: dict[str, Path]) -> None:
    with pytest.raises(VerificationError, match="tiny.evalkit-pack.dsse.json not found .* unsigned"):
        verify_pack(pack, [public(keys, "body")])


def test_signature_by_an_untrusted_key_fails(pack: Path, keys: dict[str, Path]) -> None:
    sign_pack(pack, private(keys, "stranger"))
    with pytest.raises(VerificationError, match="no signature on tiny.evalkit-pack.dsse.json verifies"):
        verify_pack(pack, [public(keys, "body")])


def test_changed_member_fails_the_signature_and_the_member_check(pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    sign_pack(pack, private(keys, "body"))
    tamper(pack, lambda ms: replace_member(ms, MEMBER, TEST_CSV.replace("5,4,1", "5,4,0").encode()))
    with pytest.raises(VerificationError, match="the pack was changed after signing"):
        verify_pack(pack, [public(keys, "body")])
    with pytest.raises(VerificationError, match=f"member '{MEMBER}' has sha256 .* pack.json says .*changed after packing"):
        unpack_pack(pack, tmp_path / "out")
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


def test_added_member_fails(pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    sign_pack(pack, private(keys, "body"))
    tamper(pack, lambda ms: ms + [(info("suite/extra.txt", 3), b"hi\n")])
    with pytest.raises(VerificationError, match="the pack was changed after signing"):
        verify_pack(pack, [public(keys, "body")])
    with pytest.raises(VerificationError, match="member 'suite/extra.txt' is not listed in pack.json"):
        unpack_pack(pack, tmp_path / "out")


def test_removed_member_fails(pack: Path, tmp_path: Path) -> None:
    tamper(pack, lambda ms: [(m, d) for m, d in ms if m.name != "suite/LICENSE"])
    with pytest.raises(VerificationError, match="pack.json lists 'suite/LICENSE' but the pack has no such member"):
        unpack_pack(pack, tmp_path / "out")


def test_pack_json_whose_digest_list_disagrees_with_a_member_fails(pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """pack.json edited consistently (its suite_digest recomputed), but a member's sha256 is wrong."""
    def edit(members: Members) -> Members:
        manifest = manifest_of(members)
        manifest["files"][1]["sha256"] = "0" * 64
        files = [DataFileDigest(f["path"], f["sha256"], f["size"]) for f in manifest["files"]]
        manifest["suite_digest"] = suite_digest(manifest["suite"], manifest["version"], files)
        return with_manifest(members, manifest)

    tamper(pack, edit)
    with pytest.raises(VerificationError, match=f"member '{MEMBER}' has sha256 .*pack.json says 0000000000000000"):
        unpack_pack(pack, tmp_path / "out")
    with pytest.raises(VerificationError, match=f"member '{MEMBER}' has sha256"):
        sign_pack(pack, private(keys, "body"))  # nobody signs a pack that does not unpack
    assert not signature_path(pack).exists()


def test_pack_json_whose_list_disagrees_with_its_suite_digest_fails(pack: Path, tmp_path: Path) -> None:
    def edit(members: Members) -> Members:
        manifest = manifest_of(members)
        manifest["files"][1]["sha256"] = "0" * 64
        return with_manifest(members, manifest)

    tamper(pack, edit)
    with pytest.raises(VerificationError, match="file list gives suite digest .* edited after packing"):
        unpack_pack(pack, tmp_path / "out")


def test_signature_of_another_pack_fails(suite_dir: Path, pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    other_suite = write_suite(tmp_path / "other")
    (other_suite / "NOTES.md").write_text("another file\n", encoding="utf-8")
    other = tmp_path / "other.evalkit-pack"
    pack_suite(other_suite, other)
    sign_pack(other, private(keys, "body"))
    signature_path(pack).write_bytes(signature_path(other).read_bytes())
    with pytest.raises(VerificationError, match="but its signature covers .*: the pack was changed after signing"):
        verify_pack(pack, [public(keys, "body")])
    with pytest.raises(VerificationError, match="remove tiny.evalkit-pack.dsse.json to sign this pack afresh"):
        sign_pack(pack, private(keys, "second"))


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (info("../evil", 3), r"member '\.\./evil' contains '\.\.'"),
        (info("suite/../../evil", 3), r"contains '\.\.'"),
        (info("/etc/evil", 3), r"member '/etc/evil' is absolute"),
        (info("suite/./x", 3), r"is not a normalised path"),
    ],
)
def test_member_names_that_leave_the_folder_are_refused(pack: Path, tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    tamper(pack, lambda ms: ms[:2] + [(member, b"hi\n")] + ms[2:])
    with pytest.raises(VerificationError, match=message):
        unpack_pack(pack, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("kind", "what"),
    [(tarfile.SYMTYPE, "a symbolic link"), (tarfile.LNKTYPE, "a hard link"),
     (tarfile.CHRTYPE, "a character device"), (tarfile.DIRTYPE, "a folder entry"), (tarfile.FIFOTYPE, "a FIFO")],
)
def test_links_devices_and_folders_are_refused(pack: Path, tmp_path: Path, kind: bytes, what: str) -> None:
    link = info("suite/data/link.csv", 0, kind)
    link.linkname = "/etc/passwd"
    tamper(pack, lambda ms: ms + [(link, b"")])
    with pytest.raises(VerificationError, match=f"member 'suite/data/link.csv' is {what}; packs hold regular files only"):
        unpack_pack(pack, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_oversized_members_are_refused_before_reading(pack: Path, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match=f"member '{MEMBER}' is 58 bytes, over the limit of 40 bytes per member"):
        unpack_pack(pack, tmp_path / "a", limits=PackLimits(max_member_bytes=40))
    with pytest.raises(VerificationError, match="members total more than the limit of 60 bytes"):
        unpack_pack(pack, tmp_path / "b", limits=PackLimits(max_total_bytes=60))
    with pytest.raises(VerificationError, match="more than 2 members"):
        unpack_pack(pack, tmp_path / "c", limits=PackLimits(max_members=2))
    assert not any((tmp_path / n).exists() for n in "abc") and no_leftovers(tmp_path)


def test_duplicate_members_are_refused(pack: Path, tmp_path: Path) -> None:
    tamper(pack, lambda ms: ms + [ms[2]])
    with pytest.raises(VerificationError, match=f"member '{MEMBER}' appears twice"):
        unpack_pack(pack, tmp_path / "out")
    tamper(pack, lambda ms: ms[:-1] + [(info("suite/LICENSe", 3), b"hi\n")])
    with pytest.raises(VerificationError, match="differs from 'suite/LICENSE' only in case"):
        unpack_pack(pack, tmp_path / "out")


@pytest.mark.parametrize("order", [("x", "x/y"), ("x/y", "x")])
def test_a_name_that_is_both_file_and_folder_is_refused(tmp_path: Path, order: tuple[str, str]) -> None:
    """A self-consistent pack.json cannot make one path a file and a folder at once."""
    files = [DataFileDigest(path, hashlib.sha256(b"hi\n").hexdigest(), 3) for path in sorted(order)]
    manifest = {"format": "evalkit.suite-pack/v1", "suite": "t", "version": "1", "suite_digest": suite_digest("t", "1", files),
                "files": [{"path": f.path, "size": 3, "sha256": f.sha256} for f in files]}
    data = json.dumps(manifest).encode()
    members = [(info("pack.json", len(data)), data)] + [(info("suite/" + path, 3), b"hi\n") for path in order]
    with pytest.raises(VerificationError, match="clashes with another member's path"):
        unpack_pack(write_members(tmp_path / "p.tar", members), tmp_path / "out")
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


def test_not_a_pack_is_refused(pack: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "zipped.evalkit-pack"
    zipped.write_bytes(gzip.compress(pack.read_bytes(), mtime=0))
    with pytest.raises(VerificationError, match="not a readable uncompressed tar archive"):
        unpack_pack(zipped, tmp_path / "out")
    plain = write_members(tmp_path / "plain.tar", [(info("suite/x", 3), b"hi\n")])
    with pytest.raises(VerificationError, match="the first member must be pack.json, found 'suite/x'"):
        unpack_pack(plain, tmp_path / "out")


# --- load_suite_ref: what `evalkit run` calls -----------------------------------------------------


def test_bundled_names_and_folders_pass_through(suite_dir: Path, tmp_path: Path) -> None:
    assert load_suite_ref(str(suite_dir), cache_dir=tmp_path) == (suite_dir, None)
    with pytest.raises(VerificationError, match=re.escape(
        f"suite {suite_dir} is not a signed pack; --require-signed-suites accepts only packs signed by a --trust key"
    )):
        load_suite_ref(str(suite_dir), trusted_keys=[], require_signed=True, cache_dir=tmp_path)


def test_signed_pack_unpacks_once_into_the_cache(suite_dir: Path, pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    sign_pack(pack, private(keys, "body"))
    sha = hashlib.sha256(pack.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    folder, record = load_suite_ref(str(pack), trusted_keys=[public(keys, "body")], require_signed=True, cache_dir=cache)
    assert folder == cache / "packs" / sha / "suite"
    assert record == {
        "pack_sha256": sha,
        "signed_by": [public(keys, "body").keyid],
        "pack_file": "tiny.evalkit-pack",
        "suite_digest": load_suite(suite_dir).digest,
    }
    inode = (folder / "data" / "test.csv").stat().st_ino
    assert load_suite_ref(str(pack), trusted_keys=[public(keys, "body")], cache_dir=cache)[0] == folder
    assert (folder / "data" / "test.csv").stat().st_ino == inode  # reused, not unpacked again

    (folder / "data" / "test.csv").write_text("damaged\n", encoding="utf-8")  # a damaged cache is replaced
    again, _ = load_suite_ref(str(pack), trusted_keys=[public(keys, "body")], cache_dir=cache)
    assert load_suite(again).digest == load_suite(suite_dir).digest
    assert sorted(p.name for p in (cache / "packs").iterdir()) == [sha]


def test_require_signed_refuses_unsigned_and_untrusted_packs(pack: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    trusted = [public(keys, "body")]
    with pytest.raises(VerificationError, match="tiny.evalkit-pack is unsigned .* accepts only packs signed by a --trust key"):
        load_suite_ref(str(pack), trusted_keys=trusted, require_signed=True, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="--require-signed-suites needs at least one --trust KEY"):
        load_suite_ref(str(pack), require_signed=True, cache_dir=tmp_path)
    sign_pack(pack, private(keys, "stranger"))
    with pytest.raises(VerificationError, match="signature check failed"):
        load_suite_ref(str(pack), trusted_keys=trusted, require_signed=True, cache_dir=tmp_path)
    assert not (tmp_path / "packs").exists()


def test_unsigned_pack_without_trust_is_checked_and_recorded_as_unsigned(pack: Path, tmp_path: Path) -> None:
    folder, record = load_suite_ref(str(pack), cache_dir=tmp_path)
    assert record is not None and record["signed_by"] == [] and load_suite(folder).name == "tiny"
    tamper(pack, lambda ms: ms + [(info("suite/extra.txt", 3), b"hi\n")])
    with pytest.raises(VerificationError, match="not listed in pack.json"):
        load_suite_ref(str(pack), cache_dir=tmp_path / "fresh")


# --- the commands ---------------------------------------------------------------------------------


def test_cli_pack_sign_verify_through_register(suite_dir: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    app, suite_app = typer.Typer(), typer.Typer()
    app.command("noop")(lambda: None)  # typer flattens a one-command app; keep `suite` a group
    app.add_typer(suite_app, name="suite")
    register(app, suite_app)
    runner, packed = CliRunner(), tmp_path / "tiny.evalkit-pack"
    result = runner.invoke(app, ["suite", "pack", str(suite_dir), "--out", str(packed)])
    assert result.exit_code == 0, result.output
    assert f"sha256 {hashlib.sha256(packed.read_bytes()).hexdigest()}" in result.output
    for name in ("body", "second"):
        result = runner.invoke(app, ["suite", "sign", str(packed), "--key", str(keys[name].with_suffix(".key"))])
        assert result.exit_code == 0, result.output
    pubs = ["--pub", str(keys["body"].with_suffix(".pub")), "--pub", str(keys["second"].with_suffix(".pub"))]
    result = runner.invoke(app, ["suite", "verify", str(packed), *pubs, "--threshold", "2"])
    assert result.exit_code == 0 and "signed by 2 trusted key(s)" in result.output
    result = runner.invoke(app, ["suite", "pack", str(suite_dir), "--out", str(tmp_path / "x.zip")])
    assert isinstance(result.exception, ConfigError)


def evalkit(*args: str) -> subprocess.CompletedProcess:
    """`python -m evalkit ARGS`, with the trust commands registered even before cli.py does it."""
    script = (
        "import sys\n"
        "from evalkit import cli\n"
        "from evalkit.cli_trust import register\n"
        "if not any(c.name == 'sign' for c in cli.app.registered_commands):\n"
        "    register(cli.app, cli.suite_app)\n"
        "cli.main()\n"
    )
    return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True, text=True)


def test_cli_subprocess_pack_sign_verify_and_a_one_line_error(suite_dir: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    packed = tmp_path / "tiny.evalkit-pack"
    assert evalkit("suite", "pack", str(suite_dir), "--out", str(packed)).returncode == 0
    signed = evalkit("suite", "sign", str(packed), "--key", str(keys["body"].with_suffix(".key")))
    assert signed.returncode == 0, signed.stderr
    ok = evalkit("suite", "verify", str(packed), "--pub", str(keys["body"].with_suffix(".pub")))
    assert ok.returncode == 0 and ok.stdout.startswith("verified:"), ok.stderr
    bad = evalkit("suite", "verify", str(packed), "--pub", str(keys["stranger"].with_suffix(".pub")))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: signature check failed") and len(bad.stderr.strip().splitlines()) == 1
    assert os.path.exists(signature_path(packed))
