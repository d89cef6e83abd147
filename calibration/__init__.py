"""Calibration procedures (tcp, fixture, servo, payload); the per-arm store is core: rmskill.calibration_store."""
