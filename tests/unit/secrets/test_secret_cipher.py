"""AES-GCM sealing of secret values, the key format and the key file of a single-machine install."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from libs.core.errors import SecretError
from libs.secrets.cipher import Cipher, DecryptionError, Sealed, SecretsKeyError, generate_key, parse_key
from libs.secrets.keyfile import KEY_FILE, configured_or_stored_key, load_or_create_key


def test_round_trip() -> None:
    cipher = Cipher.from_text(generate_key())
    sealed = cipher.encrypt("s3cr3t ✓", name="api-token")
    assert "s3cr3t" not in sealed.ciphertext
    assert cipher.decrypt(sealed, name="api-token") == "s3cr3t ✓"


def test_each_seal_uses_a_fresh_nonce() -> None:
    cipher = Cipher.from_text(generate_key())
    first, second = cipher.encrypt("same", name="n"), cipher.encrypt("same", name="n")
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext


def test_a_wrong_key_does_not_decrypt() -> None:
    sealed = Cipher.from_text(generate_key()).encrypt("value", name="n")
    with pytest.raises(DecryptionError, match="'n' cannot be decrypted"):
        Cipher.from_text(generate_key()).decrypt(sealed, name="n")


def test_tampered_ciphertext_does_not_decrypt() -> None:
    cipher = Cipher.from_text(generate_key())
    sealed = cipher.encrypt("value", name="n")
    raw = bytearray(base64.b64decode(sealed.ciphertext))
    raw[0] ^= 1
    with pytest.raises(SecretError):
        cipher.decrypt(Sealed(sealed.nonce, base64.b64encode(bytes(raw)).decode()), name="n")


def test_a_value_sealed_under_another_name_does_not_decrypt() -> None:
    cipher = Cipher.from_text(generate_key())
    with pytest.raises(DecryptionError):
        cipher.decrypt(cipher.encrypt("value", name="a"), name="b")


def test_garbage_in_the_store_is_a_decryption_error() -> None:
    with pytest.raises(DecryptionError):
        Cipher.from_text(generate_key()).decrypt(Sealed("not base64!", "x"), name="n")


@pytest.mark.parametrize("text, reason", [("abc", "not valid base64"),
                                          (base64.b64encode(b"short").decode(), "decodes to 5 bytes")])
def test_malformed_keys_are_refused_without_quoting_them(text: str, reason: str) -> None:
    with pytest.raises(SecretsKeyError, match=reason) as caught:
        parse_key(text)
    assert text not in str(caught.value)
    assert "32 random bytes" in str(caught.value)


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE
    key = load_or_create_key(path)
    assert len(parse_key(key)) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert configured_or_stored_key("", tmp_path / "data") == key
    assert list(path.parent.iterdir()) == [path], "no temporary file is left behind"


def test_a_configured_key_wins_over_the_file(tmp_path: Path) -> None:
    configured = generate_key()
    assert configured_or_stored_key(configured, tmp_path) == configured
    assert not (tmp_path / KEY_FILE).exists()


def test_a_corrupt_key_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_text("not-a-key")
    with pytest.raises(SecretsKeyError, match=str(path)):
        load_or_create_key(path)


def test_settings_refuse_a_malformed_key_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from libs.runtime.settings import CommonSettings

    monkeypatch.setenv("STEPLINE_SECRETS_KEY", "bm90LTMyLWJ5dGVz")
    with pytest.raises(ValidationError, match="STEPLINE_SECRETS_KEY must be the base64") as caught:
        CommonSettings()
    assert "bm90LTMyLWJ5dGVz" not in str(caught.value)
    monkeypatch.setenv("STEPLINE_SECRETS_KEY", generate_key())
    assert CommonSettings().secrets_key
