"""Decryption of delivery members: OpenPGP (GnuPG) and Office documents."""

from .openpgp import decrypt_openpgp, encrypt_openpgp, is_openpgp

__all__ = ["decrypt_openpgp", "encrypt_openpgp", "is_openpgp"]
