"""Bearer tokens: JWTs Dockyard signs for its own clients and those it trusts from others.

Own tokens are signed with one asymmetric key (ES256 for an EC P-256 key, RS256 for an
RSA key), generated under the data directory on first start unless configured. Tokens
of trusted external issuers are checked against their public key or JWKS file.

What makes a token acceptable, in order (any failure: :class:`InvalidToken`):

- its ``iss`` is Dockyard's issuer or a trusted one, and its signature verifies with
  that issuer's key, under an algorithm fixed by the key's type. The token's own
  ``alg`` header never chooses the algorithm: ``none`` and HMAC (the "HS256 signed with
  the public key" confusion) are never accepted;
- its ``aud`` is this registry's service (a token for another service is refused);
- it has not expired (``exp``, 30 s of leeway for clock skew) and is not used before
  its ``nbf``/``iat``.

The ``access`` claim then says what the bearer may do, and nothing more.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dockyard.auth.scopes import Scope

_LEEWAY = 30
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyFileError(ValueError):
    """A key file that cannot be used for tokens; the message names the file."""


class InvalidToken(Exception):
    """A bearer token Dockyard does not accept; ``str()`` says why (safe to show)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def algorithms_for(key: PublicKey) -> tuple[str, ...]:
    """The only algorithms a signature by ``key`` may use."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        if alg is None:
            raise KeyFileError(f"EC curve {key.curve.name} is not supported (use P-256)")
        return (alg,)
    if key.key_size < 2048:
        raise KeyFileError(f"an RSA key of {key.key_size} bits is too weak (2048 at least)")
    return _RSA_ALGORITHMS


def key_id(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint of ``key``: a stable ``kid``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        members = {
            "crv": {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
                key.curve.name, key.curve.name
            ),
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(size, "big")),
            "y": _b64(numbers.y.to_bytes(size, "big")),
        }
    else:
        rsa_numbers = key.public_numbers()
        members = {
            "e": _b64(rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": _b64(rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Dockyard's own private key, the algorithm it signs with and its ``kid``."""

    private: PrivateKey
    algorithm: str
    kid: str

    @property
    def public(self) -> PublicKey:
        return self.private.public_key()

    @classmethod
    def from_pem(cls, data: bytes, source: Path | str) -> SigningKey:
        """A P-256 or RSA (2048+) private key in PEM; KeyFileError otherwise."""
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise KeyFileError(f"{source} is not an unencrypted PEM private key: {e}") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyFileError(f"{source}: only EC P-256 (ES256) and RSA (RS256) keys sign tokens")
        public = private.public_key()
        algorithms = algorithms_for(public)
        if isinstance(private, ec.EllipticCurvePrivateKey) and algorithms != ("ES256",):
            raise KeyFileError(f"{source}: an EC signing key must be P-256 (ES256)")
        return cls(private, algorithms[0], key_id(public))


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The key at ``path``; when there is none, a new P-256 key written there first
    (owner-only). Several workers starting at once agree on one key: the file appears
    by an atomic link, and whoever loses the race reads the winner's."""
    try:
        return SigningKey.from_pem(path.read_bytes(), path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        Path(tmp).unlink()
    return SigningKey.from_pem(path.read_bytes(), path)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key that may sign an issuer's tokens, and with which algorithms."""

    key: PublicKey
    algorithms: tuple[str, ...]
    kid: str | None = None


def load_public_key(path: Path) -> list[VerificationKey]:
    """A PEM public key (or certificate) file as a verification key."""
    data = path.read_bytes()
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise KeyFileError(f"{path} is not a PEM public key or certificate: {e}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: only EC and RSA public keys are supported")
    return [VerificationKey(key, algorithms_for(key), key_id(key))]


def load_jwks(path: Path) -> list[VerificationKey]:
    """The signing keys of a JWKS file (``{"keys": [...]}``); symmetric keys are refused."""
    try:
        doc = json.loads(path.read_bytes())
        entries = doc["keys"]
        assert isinstance(entries, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise KeyFileError(f'{path} is not a JWKS document ({{"keys": [...]}})') from None
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("EC", "RSA"):
            raise KeyFileError(f"{path}: key type {entry.get('kty')!r} is refused (EC or RSA only)")
        try:
            key = jwt.PyJWK(entry).key
        except jwt.PyJWKError as e:
            raise KeyFileError(f"{path}: {e}") from None
        allowed = algorithms_for(key)
        alg = entry.get("alg")
        if alg is not None and alg not in allowed:
            raise KeyFileError(f"{path}: alg {alg!r} does not fit a {entry['kty']} key")
        keys.append(VerificationKey(key, (alg,) if alg else allowed, entry.get("kid")))
    if not keys:
        raise KeyFileError(f"{path} holds no signing keys")
    return keys


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as the token endpoint returns it."""

    token: str
    expires_in: int
    issued_at: str
    granted: tuple[Scope, ...]


class TokenIssuer:
    """Signs Dockyard's own tokens."""

    def __init__(self, key: SigningKey, issuer: str, service: str, ttl: float) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.ttl = ttl

    def issue(
        self, subject: str, granted: list[Scope], not_after: datetime | None = None
    ) -> IssuedToken:
        """A token for ``subject`` granting exactly ``granted``, valid for the configured
        time-to-live or until ``not_after`` (a robot's expiry), whichever comes first."""
        now = int(time.time())
        expires = now + int(self.ttl)
        if not_after is not None:
            expires = min(expires, int(not_after.timestamp()))
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            "access": [s.to_claim() for s in granted],
        }
        token = jwt.encode(
            claims, self.key.private, algorithm=self.key.algorithm, headers={"kid": self.key.kid}
        )
        issued_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        return IssuedToken(token, max(expires - now, 0), issued_at, tuple(granted))


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check: who it is for and what it grants."""

    issuer: str
    subject: str
    own: bool
    access: dict[tuple[str, str], frozenset[str]]

    def allows(self, kind: str, name: str, action: str) -> bool:
        """Whether the ``access`` claim grants ``action`` on ``kind:name``."""
        actions = self.access.get((kind, name), frozenset())
        return action in actions or "*" in actions


class TokenVerifier:
    """Checks bearer tokens (see the module docstring for the rules)."""

    def __init__(
        self,
        service: str,
        own_issuer: str,
        own_key: SigningKey,
        trusted: dict[str, list[VerificationKey]],
    ) -> None:
        self.service = service
        self.own_issuer = own_issuer
        own = VerificationKey(own_key.public, (own_key.algorithm,), own_key.kid)
        self._keys = {**trusted, own_issuer: [own]}

    def verify(self, token: str) -> VerifiedToken:
        """The checked token; InvalidToken with the reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        issuer = unverified.get("iss")
        keys = self._keys.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise InvalidToken("token from an issuer this registry does not trust")
        kid = header.get("kid")
        candidates = [k for k in keys if kid is None or k.kid is None or k.kid == kid] or keys
        claims: dict[str, Any] | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=list(candidate.algorithms),
                    audience=self.service,
                    issuer=issuer,
                    leeway=_LEEWAY,
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAlgorithmError:
                raise InvalidToken("token signed with an algorithm this key does not use") from None
            except jwt.ExpiredSignatureError:
                raise InvalidToken("token has expired") from None
            except jwt.InvalidAudienceError:
                raise InvalidToken(f"token is not for service {self.service!r}") from None
            except jwt.ImmatureSignatureError:
                raise InvalidToken("token is not valid yet") from None
            except jwt.InvalidTokenError as e:
                raise InvalidToken(f"invalid token: {e}") from None
        if claims is None:
            raise InvalidToken("token signature does not verify")
        assert isinstance(issuer, str)
        return VerifiedToken(
            issuer=issuer,
            subject=str(claims["sub"]),
            own=issuer == self.own_issuer,
            access=_access(claims.get("access")),
        )


def _access(claim: Any) -> dict[tuple[str, str], frozenset[str]]:
    if claim is None:
        return {}
    if not isinstance(claim, list):
        raise InvalidToken("token access claim is not a list")
    access: dict[tuple[str, str], frozenset[str]] = {}
    for entry in claim:
        if not isinstance(entry, dict):
            raise InvalidToken("token access claim holds a non-object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise InvalidToken("token access entry lacks type, name or actions")
        key = (kind, name)
        access[key] = access.get(key, frozenset()) | {a for a in actions if isinstance(a, str)}
    return access
