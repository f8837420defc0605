"""C2PA content credentials on every file the appliance writes (official `c2pa-python` bindings).

The manifest says: created by Ventriloquist (version), digital source type trained algorithmic
media, the mouth model and its sha256, the mode, the face pack and its consent statement, and the
portrait as ingredient where it is a file. It is signed with the operator's certificate and key
(`provenance.cert`, `provenance.key`) or, when none is set, a per-appliance certificate made once
under the config folder (`provenance.folder`; a small self-signed CA and an ES256 leaf, since C2PA refuses a
self-signed signing certificate; files 0600). Verification of such a file then says "signed, not by
a trusted issuer", which is honest. A manifest that cannot be made or signed stops the write.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from firmware_app import __version__
from firmware_app.errors import MediaError

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CLAIMS_LABEL = "org.ventriloquist.generation"
ASSERTION_CLAIMS = ("mouth_model", "mouth_model_sha256", "mode", "face_pack", "consent")


@dataclass
class Claims:
    mode: str
    mouth_model: str
    mouth_model_sha256: str
    face_pack: str = ""  # the pack's file name, "" when none was used
    consent: str = ""  # the consent statement the pack records
    ingredient: Path | None = None  # the portrait file the video was made from


def claims_from_settings(settings) -> Claims:  # type: ignore[no-untyped-def]
    """What this configuration generates with: its model, mode, face pack and portrait."""
    from firmware_app.assets import resolve_path
    from firmware_app.face.pack import face_pack_path, load_face_pack
    from firmware_app.uri import parse_uri

    if settings.model.kind == "learned":
        model = resolve_path(settings.model.onnx_path())
        name, digest = model.name, hashlib.sha256(model.read_bytes()).hexdigest()
    else:
        name, digest = "loudness (jaw follows the level, no learned model)", ""
    claims = Claims(settings.mode, name, digest)
    pack = face_pack_path(settings.sources.portrait) if settings.sources.portrait else None
    if pack is not None:
        claims.face_pack, claims.consent = pack.name, load_face_pack(pack).consent
    elif settings.mode == "puppet":
        uri = settings.sources.portrait
        path = resolve_path(uri) if uri.startswith("bundled://") else parse_uri(uri, ("file",)).path
        if path.is_file() and mimetypes.guess_type(path.name)[0] in ("image/jpeg", "image/png"):
            claims.ingredient = path
    return claims


class Credentials:
    """The signer: the operator's certificate chain and key, else the appliance's own, made once."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        cert, key = settings.cert, settings.key
        if bool(cert) != bool(key):
            raise MediaError("provenance.cert and provenance.key must be set together", "set both, or neither")
        if not cert:
            folder = Path(settings.folder).expanduser() if settings.folder else _config_folder() / "provenance"
            cert, key = str(folder / "appliance-chain.pem"), str(folder / "appliance-key.pem")
            if not (Path(cert).is_file() and Path(key).is_file()):
                make_appliance_certificate(folder)
        try:
            self.chain, self.key = Path(cert).read_bytes(), Path(key).read_bytes()
        except OSError as exc:
            raise MediaError(f"cannot read the signing certificate/key: {exc}", "fix provenance.cert/key") from None
        self._probe()  # refuse a bad certificate now, before anything is rendered

    def _probe(self) -> None:
        """Sign a tiny picture in memory: C2PA checks the chain only when it signs (it refuses, e.g., a
        self-signed leaf or a key that is not the certificate's)."""
        import c2pa
        import cv2
        import numpy as np

        picture = io.BytesIO(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
        try:
            with c2pa.Builder(json.dumps(manifest(Claims("probe", "", ""), "probe.jpg"))) as builder:
                with self.signer() as signer:
                    builder.sign(signer, "image/jpeg", picture, io.BytesIO())
        except c2pa.C2paError as exc:
            raise MediaError(
                f"the signing certificate/key are not usable for C2PA ({exc})",
                "give an ES256 (P-256) certificate chain issued by a CA, with its key, or unset provenance.cert/key",
            ) from None

    def signer(self):  # type: ignore[no-untyped-def]
        import c2pa

        info = c2pa.C2paSignerInfo(b"es256", self.chain, self.key, None)
        try:
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise MediaError(
                f"the signing certificate/key are not usable for C2PA ({exc})",
                "give an ES256 (P-256) certificate chain with its key, or unset provenance.cert/key",
            ) from None


def _config_folder() -> Path:
    system = Path("/etc/ventriloquist")  # the kiosk's config folder, its one writable place there
    return system if os.access(system, os.W_OK) else Path.home() / ".config" / "ventriloquist"


def make_appliance_certificate(folder: Path) -> None:
    """A per-appliance CA and its ES256 signing leaf (digitalSignature, emailProtection), 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common), _org()])

    def _org() -> x509.NameAttribute:
        return x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ventriloquist appliance")

    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    host = os.uname().nodename
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(f"Ventriloquist appliance CA {host}"))
        .issuer_name(name(f"Ventriloquist appliance CA {host}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(f"Ventriloquist appliance {host}"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for file, data in (
            ("appliance-key.pem", key_pem),
            ("appliance-chain.pem", leaf.public_bytes(pem) + ca.public_bytes(pem)),
        ):
            fd = os.open(folder / file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
    except OSError as exc:
        raise MediaError(
            f"cannot make the appliance's signing certificate in {folder}: {exc}",
            "make provenance.folder writable, set provenance.cert/key, or set provenance: off",
        ) from None


def _usage(digital_signature: bool = False, key_cert_sign: bool = False):  # type: ignore[no-untyped-def]
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class Provenance:
    """What a sink needs to sign its files: the claims and the credentials, both ready at start."""

    def __init__(self, claims: Claims, credentials: Credentials) -> None:
        self.claims, self.credentials = claims, credentials

    def sign(self, source: Path, dest: Path, mime: str) -> None:
        sign_file(source, dest, self.claims, self.credentials, mime)


def provenance_for(settings) -> Provenance | None:  # type: ignore[no-untyped-def]
    """None with `provenance: off` or when the output is no file; else ready to sign (made at start,
    so a bad certificate stops the appliance before it renders, not after)."""
    if not settings.provenance.enabled or not settings.output.uri.startswith("file://"):
        return None
    return Provenance(claims_from_settings(settings), Credentials(settings.provenance))


def manifest(claims: Claims, title: str) -> dict:
    return {
        "claim_generator_info": [{"name": "Ventriloquist", "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": SOURCE_TYPE,
                            "softwareAgent": {"name": "Ventriloquist", "version": __version__},
                        }
                    ]
                },
            },
            {"label": CLAIMS_LABEL, "data": {k: getattr(claims, k) for k in ASSERTION_CLAIMS}},
        ],
    }


def sign_file(source: Path, dest: Path, claims: Claims, credentials: Credentials, mime: str) -> None:
    """Write `source` to `dest` with the signed manifest embedded; on any failure no `dest` is left."""
    try:
        with open(source, "rb") as src, open(dest, "w+b") as dst:
            _sign_stream(src, dst, dest.name, claims, credentials, mime)
    except (MediaError, OSError) as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, MediaError):
            raise
        raise _unsigned(dest.name, exc) from None


def sign_bytes(data: bytes, name: str, claims: Claims, credentials: Credentials, mime: str) -> bytes:
    """`data` (a picture encoded in memory: the console's snapshot) with the signed manifest embedded."""
    signed = io.BytesIO()
    _sign_stream(io.BytesIO(data), signed, name, claims, credentials, mime)
    return signed.getvalue()


def _sign_stream(src, dst, name: str, claims: Claims, credentials: Credentials, mime: str) -> None:  # type: ignore[no-untyped-def]
    import c2pa

    try:
        with c2pa.Builder(json.dumps(manifest(claims, name))) as builder:
            if claims.ingredient is not None:
                kind = mimetypes.guess_type(claims.ingredient.name)[0] or "image/jpeg"
                with open(claims.ingredient, "rb") as picture:
                    builder.add_ingredient_from_stream(
                        json.dumps({"title": claims.ingredient.name, "relationship": "inputTo"}), kind, picture
                    )
            with credentials.signer() as signer:
                builder.sign(signer, mime, src, dst)
    except (c2pa.C2paError, OSError) as exc:
        raise _unsigned(name, exc) from None


def _unsigned(name: str, exc: Exception) -> MediaError:
    return MediaError(
        f"cannot sign the content credentials of {name}: {exc}",
        "check provenance.cert/key, or set provenance: off to write files without them",
    )


def read_manifest(path: Path) -> dict | None:
    """The file's manifest store as JSON with its validation state, None when it has none."""
    import c2pa

    mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
    with open(path, "rb") as stream:
        try:
            reader = c2pa.Reader(mime, stream)
        except c2pa.C2paError as exc:
            if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
                return None
            return {"error": str(exc)}
        with reader:
            store = json.loads(reader.json())
            store["validation_state"] = str(reader.get_validation_state())
            return store


__all__ = ["Claims", "Credentials", "Provenance", "provenance_for", "read_manifest", "sign_file"]


class SnapshotSigner:
    """Content credentials for stills encoded in memory (the console's snapshot download): the
    claims and credentials of the settings in force, made once per config (a reload brings new ones)."""

    def __init__(self) -> None:
        self._for: object | None = None
        self._provenance: Provenance | None = None

    def credentialed(self, data: bytes, name: str, settings) -> bytes:  # type: ignore[no-untyped-def]
        """`data` signed; unchanged with `provenance: off`. MediaError when it cannot be signed."""
        if not settings.provenance.enabled:
            return data
        if self._for is not settings:
            self._provenance = Provenance(claims_from_settings(settings), Credentials(settings.provenance))
            self._for = settings
        assert self._provenance is not None
        return sign_bytes(data, name, self._provenance.claims, self._provenance.credentials, "image/jpeg")
