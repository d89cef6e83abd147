"""Calibration procedures (tcp, fixture, servo, payload) and the per-arm calibration store."""
