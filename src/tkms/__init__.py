"""tkms — threshold Key Management Service for ECIES decryption delegation."""

__version__ = "0.1.0"
