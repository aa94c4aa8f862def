"""The served model: artifact, fitted spec, score, calibration, verify, signing, registry and hot reload."""
