"""Personal data: GDPR export, erasure and retention."""
